"""TransE knowledge-graph embeddings (Bordes et al., 2013) as a Lightning module.

A triple (h, r, t) is plausible when ``e_h + w_r ≈ e_t``; its distance is
``‖e_h + w_r − e_t‖_p`` with p = 1 (L1) or 2 (L2), smaller is better.

Everything TransE-specific is here and in pure functions:

* :func:`pairwise_distance` (from :mod:`kept.kg.transe.evaluate`): L1/L2 distances between two
  sets of vectors with matrix operations (L2 as ``‖x‖² + ‖y‖² − 2 x·y``, L1 ``torch.cdist``).
* :func:`margin_ranking_loss` (the paper's loss) and :func:`self_adversarial_loss`
  (Sun et al., 2019, the RotatE paper: negatives weighted by a softmax of their own score).
* :class:`TransE`: one table of entity then relation vectors, and batch scoring. A corrupted triple only
  changes one side, so both corruptions reduce to distances from a *query vector* to
  candidate entities: ``q = e_h + w_r`` when the tail is replaced, ``q = e_t − w_r`` when
  the head is (``‖e_h' + w_r − e_t‖ = ‖e_h' − (e_t − w_r)‖``). Negatives are shared by
  chunks of ``chunk_size`` triples of a batch (as in PyTorch-BigGraph), so scoring a chunk
  against its negatives is one batched matrix product.
* :func:`row_gradients` and :func:`loss_and_gradient`: a training batch's loss computed
  together with its gradient w.r.t. the rows it reads (one ``torch.compile``-fused call on
  large tables), as the table's gradient; :class:`TransELoss` hands it over through autograd
  (for DDP's gradient hooks).
* :class:`LazyAdam` (from :mod:`kept.kg.transe.optim`): Adam on the rows of the batch only.
* :class:`TransELightning`: wires loss, logging, the optimizer, entity renormalisation
  and validation (filtered MRR, see :mod:`kept.kg.transe.evaluate`).

Data (splits, epoch shuffling, negative sampling) is in :mod:`kept.kg.transe.data`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kept.kg.transe.config import TransEConfig
from kept.kg.transe.evaluate import pairwise_distance
from kept.kg.transe.kernels import Compiled
from kept.kg.transe.optim import LazyAdam

__all__ = ["TransEConfig", "TransE", "TransELoss", "LazyAdam", "pairwise_distance",
           "triple_distance", "batch_rows", "split_rows", "batch_distances", "batch_loss", "rows_loss", "row_gradients",
           "loss_and_gradient", "row_norm",
           "margin_ranking_loss", "self_adversarial_loss"]

#: entity tables with at least this many values (num_entities · dim) use compiled kernels (optimizer, L1 eval)
COMPILE_FROM = 1 << 20


# ---- pure functions ----------------------------------------------------------------------------
def row_norm(x: Tensor, p: int) -> Tensor:
    """‖x‖_p over the last dimension: [..., d] -> [...]."""
    if p == 1:  # same value and gradient as vector_norm(ord=1), several times faster on CPU for small rows
        return x.abs().sum(-1)
    return torch.linalg.vector_norm(x, ord=p, dim=-1)


def triple_distance(head: Tensor, relation: Tensor, tail: Tensor, p: int) -> Tensor:
    """Distance ‖h + r − t‖_p of aligned vectors: [..., d] x3 -> [...]."""
    return row_norm(head + relation - tail, p)


def margin_ranking_loss(pos: Tensor, neg: Tensor, margin: float, mask: Tensor | None = None) -> Tensor:
    """Bordes et al.'s loss: mean of ``max(0, margin + d(pos) − d(neg))`` over valid pairs.

    pos: [B] distances of true triples; neg: [B, k] of their corruptions; mask: [B, k]
    bool, False for negatives to ignore (a corruption equal to the true triple).
    """
    hinge = F.relu(margin + pos.unsqueeze(1) - neg)  # [B, k]
    if mask is None:
        return hinge.mean()
    return (hinge * mask).sum() / mask.sum().clamp_min(1)


def self_adversarial_loss(pos: Tensor, neg: Tensor, gamma: float, temperature: float,
                          mask: Tensor | None = None) -> Tensor:
    """Sun et al. (2019), eq. 5: ``−log σ(γ − d(pos)) − Σ_i p_i log σ(d(neg_i) − γ)``, halved.

    ``p_i = softmax_i(−temperature · d(neg_i))`` is computed without gradient, so harder
    (closer) negatives weigh more. pos: [B], neg: [B, k], mask: [B, k] (False = ignore).
    """
    logits = -temperature * neg.detach()  # [B, k]
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(logits, dim=-1).nan_to_num(0.0)  # a row with no valid negative weighs 0
    pos_loss = -F.logsigmoid(gamma - pos).mean()
    neg_loss = -(weights * F.logsigmoid(neg - gamma)).sum(-1).mean()
    return (pos_loss + neg_loss) / 2


# ---- the model ---------------------------------------------------------------------------------
class TransE(nn.Module):
    """Entity and relation vectors in one table, and the TransE distance.

    ``weight`` [N + R, d] holds the entity vectors (row = store id) and then the relation
    vectors (row N + relation id), so that a training step reads both with one gather and
    updates both with one optimizer call; ``entity`` [N, d] and ``relation`` [R, d] are views.

    Args:
        num_entities, num_relations: table sizes (store ids index the rows).
        dim: embedding size.
        p: 1 or 2, the distance norm.
        generator: seeds the initialisation (uniform in ±6/√dim, Bordes et al.; relations
            then scaled to unit L2 norm as in the paper; entities too when ``normalize``).
        normalize: start with unit-norm entity vectors.
        sparse: the table's gradients are sparse rows (default False); DDP reads this flag
            (``nn.Embedding.sparse``) to all-gather rows instead of all-reducing the table.
    """

    def __init__(self, num_entities: int, num_relations: int, dim: int, p: int = 2,
                 generator: torch.Generator | None = None, normalize: bool = True, sparse: bool = False):
        super().__init__()
        self.p, self.num_entities = p, num_entities
        self.table = nn.Embedding(num_entities + num_relations, dim, sparse=sparse)  # [N + R, d]
        bound = 6.0 / math.sqrt(dim)
        with torch.no_grad():
            self.entity.uniform_(-bound, bound, generator=generator)
            self.relation.uniform_(-bound, bound, generator=generator)
            self.relation.div_(self.relation.norm(dim=1, keepdim=True).clamp_min(1e-12))
        if normalize:
            self.normalize_entities_()

    @property
    def weight(self) -> Tensor:
        """The table [N + R, d]: entity rows, then relation rows."""
        return self.table.weight

    @property
    def entity(self) -> Tensor:
        """The entity vectors [N, d] (a view of ``weight``)."""
        return self.weight[: self.num_entities]

    @property
    def relation(self) -> Tensor:
        """The relation vectors [R, d] (a view of ``weight``)."""
        return self.weight[self.num_entities :]

    @torch.no_grad()
    def normalize_entities_(self) -> None:
        """Scale every entity vector to unit L2 norm, in place (LazyAdam renormalises the rows it moves itself)."""
        entity = self.entity
        entity.div_(entity.norm(dim=1, keepdim=True).clamp_min(1e-12))

    def lookup(self, triples: Tensor, corrupt_head: Tensor,
               negatives: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Vectors of a training batch (one gather) and the mask of valid negatives.

        triples: [B, 3] (h, r, t) ids; corrupt_head: [B] bool, True = replace the head;
        negatives: [c, k] entity ids, chunk j's negatives shared by its C = ⌈B / c⌉ rows.
        Returns e_h, w_r, e_t [B, d], e_neg [c, k, d] and mask [B, k] (False where a
        negative is the entity it replaces, i.e. the corruption is the true triple).
        """
        ids, mask = batch_rows(triples, corrupt_head, negatives, self.num_entities)
        return *split_rows(self.weight[ids], *mask.shape), mask

    def forward(self, triples: Tensor, corrupt_head: Tensor, negatives: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Distances of a batch of true triples and of their corruptions (arguments of :meth:`lookup`).

        Returns pos [B], neg [B, k] and the mask [B, k] of valid negatives.
        """
        e_h, w_r, e_t, e_neg, mask = self.lookup(triples, corrupt_head, negatives)
        pos, neg = batch_distances(e_h, w_r, e_t, e_neg, corrupt_head, self.p)
        return pos, neg, mask


def batch_rows(triples: Tensor, corrupt_head: Tensor, negatives: Tensor, num_entities: int) -> tuple[Tensor, Tensor]:
    """The rows of :class:`TransE`'s table a training batch reads, and the mask of its valid negatives.

    triples: [B, 3]; corrupt_head: [B] bool; negatives: [c, k] (chunk j's shared by its
    C = ⌈B / c⌉ rows); num_entities: N, where the relation rows start. Returns ids
    [3B + c·k] (heads, tails, the negatives row-major, then the relations' rows N + r;
    :func:`split_rows` takes them apart) and mask [B, k] (False where a negative is the
    entity it replaces, i.e. the corruption is the true triple).
    """
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    B, c = triples.shape[0], negatives.shape[0]
    target = torch.where(corrupt_head, h, t)  # [B] the entity each corruption replaces
    neg_ids = negatives if c == B else negatives.repeat_interleave(-(-B // c), dim=0)[:B]  # [B, k]
    return torch.cat([h, t, negatives.reshape(-1), r + num_entities]), neg_ids != target.unsqueeze(1)


def split_rows(rows: Tensor, B: int, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The rows gathered at :func:`batch_rows`' ids [3B + c·k, d] as e_h, w_r, e_t [B, d] and e_neg [c, k, d]."""
    e_h, e_t, e_neg, w_r = rows.split([B, B, rows.shape[0] - 3 * B, B])
    return e_h, w_r, e_t, e_neg.view(-1, k, rows.shape[1])


def batch_distances(e_h: Tensor, w_r: Tensor, e_t: Tensor, e_neg: Tensor, corrupt_head: Tensor,
                    p: int) -> tuple[Tensor, Tensor]:
    """TransE distances of true triples [B] and of their corruptions [B, k].

    e_h, w_r, e_t: [B, d]; e_neg: [c, k, d], the negatives of chunk j serve its rows
    j·C .. (j+1)·C − 1 with C = ⌈B / c⌉; corrupt_head: [B] bool.
    """
    B, (c, k) = e_h.shape[0], e_neg.shape[:2]
    C = -(-B // c)  # rows per chunk
    pos = triple_distance(e_h, w_r, e_t, p)  # [B]
    query = torch.where(corrupt_head.unsqueeze(1), e_t - w_r, e_h + w_r)  # [B, d]
    if C == 1:  # independent negatives: no matrix product to share
        return pos, row_norm(query.unsqueeze(1) - e_neg, p)  # [B, k]
    padded = F.pad(query, (0, 0, 0, c * C - B)).view(c, C, -1)  # [c, C, d]
    return pos, pairwise_distance(padded, e_neg, p).reshape(c * C, k)[:B]  # [B, k]


def batch_loss(e_h: Tensor, w_r: Tensor, e_t: Tensor, e_neg: Tensor, corrupt_head: Tensor, mask: Tensor, p: int,
               margin: float, temperature: float) -> Tensor:
    """Loss of a batch from its vectors (:meth:`TransE.lookup`): self-adversarial when
    ``temperature`` > 0, else the margin ranking loss."""
    pos, neg = batch_distances(e_h, w_r, e_t, e_neg, corrupt_head, p)
    if temperature > 0:
        return self_adversarial_loss(pos, neg, margin, temperature, mask)
    return margin_ranking_loss(pos, neg, margin, mask)


def rows_loss(rows: Tensor, corrupt_head: Tensor, mask: Tensor, p: int, margin: float,
              temperature: float) -> Tensor:
    """:func:`batch_loss` from the rows at :func:`batch_rows`' ids [3B + c·k, d] (mask [B, k] gives B and k)."""
    return batch_loss(*split_rows(rows, *mask.shape), corrupt_head, mask, p, margin, temperature)


def row_gradients(table: Tensor, triples: Tensor, corrupt_head: Tensor, negatives: Tensor, num_entities: int,
                  p: int, margin: float, temperature: float) -> tuple[Tensor, Tensor, Tensor]:
    """Loss of a batch and its gradient w.r.t. the rows it reads, without an autograd graph.

    table: [N + R, d] (:class:`TransE`'s ``weight``); the batch and num_entities as
    :func:`batch_rows` takes them; p, margin, temperature as :func:`batch_loss`. Returns the
    loss [], the ids of the rows read [3B + c·k] and d loss / d rows [3B + c·k, d] (one
    row per id, duplicates not summed). Written with ``torch.func`` so that
    ``torch.compile`` fuses row ids, gather, loss and gradient into a few kernels.
    """
    ids, mask = batch_rows(triples, corrupt_head, negatives, num_entities)

    def loss_of(rows: Tensor) -> Tensor:
        return rows_loss(rows, corrupt_head, mask, p, margin, temperature)

    grad, loss = torch.func.grad_and_value(loss_of)(table[ids])
    return loss, ids, grad


#: :func:`row_gradients` through torch.compile, for independent negatives on large tables
_row_gradients = Compiled(row_gradients)


@torch.no_grad()
def loss_and_gradient(table: Tensor, triples: Tensor, corrupt_head: Tensor, negatives: Tensor, num_entities: int,
                      p: int, margin: float, temperature: float, sparse: bool,
                      compiled: bool) -> tuple[Tensor, Tensor]:
    """The loss of a training batch (:func:`batch_loss`) and its gradient w.r.t. the whole table.

    table: [N + R, d]; triples, corrupt_head, negatives: a batch (see :func:`batch_rows`);
    num_entities: N. sparse: return the gradient as a sparse COO tensor of the rows read
    (duplicates left for the optimizer to sum, as ``nn.Embedding(sparse=True)`` gives them,
    for :class:`LazyAdam`), else dense [N + R, d]. compiled: compute through the
    torch.compile-fused :func:`row_gradients` (else plain autograd on the gathered rows,
    which has less per-op overhead than torch.func when eager).
    """
    if compiled:
        loss, ids, grad = _row_gradients(table, triples, corrupt_head, negatives, num_entities, p, margin,
                                         temperature)
    else:
        ids, mask = batch_rows(triples, corrupt_head, negatives, num_entities)
        rows = table[ids]
        with torch.enable_grad():
            rows.requires_grad_()
            loss = rows_loss(rows, corrupt_head, mask, p, margin, temperature)
            (grad,) = torch.autograd.grad(loss, rows)
    if sparse:
        return loss.detach(), torch.sparse_coo_tensor(ids.unsqueeze(0), grad, table.shape, check_invariants=False)
    return loss.detach(), grad.new_zeros(table.shape).index_add_(0, ids, grad)


class TransELoss(torch.autograd.Function):
    """The training loss of a batch as an autograd function whose gradient comes with the loss.

    ``TransELoss.apply(table, triples, corrupt_head, negatives, num_entities, p, margin,
    temperature, sparse, compiled)`` (the arguments of :func:`loss_and_gradient`) returns
    the loss; backward hands the table the gradient computed in the forward (sparse rows when
    ``sparse``), so ``loss.backward()``, DDP's gradient hooks and any optimizer work as with
    ``nn.Embedding``, but no autograd graph of gathers, splits and a dozen small ops is built.
    """

    @staticmethod
    def forward(ctx, table: Tensor, triples: Tensor, corrupt_head: Tensor, negatives: Tensor, num_entities: int,
                p: int, margin: float, temperature: float, sparse: bool, compiled: bool) -> Tensor:
        loss, grad = loss_and_gradient(table, triples, corrupt_head, negatives, num_entities, p, margin,
                                       temperature, sparse, compiled)
        # an intermediate, not an input or output: kept on ctx (not save_for_backward) so that backward
        # can drop it and autograd can take the gradient as it is instead of cloning it
        ctx.grad = grad
        return loss

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        grad = ctx.grad
        del ctx.grad
        # loss.backward() seeds 1: then no pass over the rows (checked on CPU only, where it costs no device sync)
        if grad_loss.device.type != "cpu" or float(grad_loss) != 1.0:
            grad = grad * grad_loss
        return grad, None, None, None, None, None, None, None, None, None
