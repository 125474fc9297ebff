"""TransE knowledge-graph embeddings (Bordes et al., 2013) as a Lightning module.

A triple (h, r, t) is plausible when ``e_h + w_r ≈ e_t``; its distance is
``‖e_h + w_r − e_t‖_p`` with p = 1 (L1) or 2 (L2), smaller is better.

Everything TransE-specific is here and in pure functions:

* :func:`pairwise_distance` (from :mod:`kept.kg.evaluate`): L1/L2 distances between two
  sets of vectors with matrix operations (L2 as ``‖x‖² + ‖y‖² − 2 x·y``, L1 ``torch.cdist``).
* :func:`margin_ranking_loss` (the paper's loss) and :func:`self_adversarial_loss`
  (Sun et al., 2019, the RotatE paper: negatives weighted by a softmax of their own score).
* :class:`TransE`: the two embedding tables and batch scoring. A corrupted triple only
  changes one side, so both corruptions reduce to distances from a *query vector* to
  candidate entities: ``q = e_h + w_r`` when the tail is replaced, ``q = e_t − w_r`` when
  the head is (``‖e_h' + w_r − e_t‖ = ‖e_h' − (e_t − w_r)‖``). Negatives are shared by
  chunks of ``chunk_size`` triples of a batch (as in PyTorch-BigGraph), so scoring a chunk
  against its negatives is one batched matrix product.
* :func:`row_gradients` and :class:`TransELoss`: a training batch's loss computed together
  with its gradient w.r.t. the rows it reads (one ``torch.compile``-fused call on large
  tables), handed to the tables as row gradients by the autograd backward.
* :class:`LazyAdam` (from :mod:`kept.kg.transe_optim`): Adam on the rows of the batch only.
* :class:`TransELightning`: wires loss, logging, the optimizer, entity renormalisation
  and validation (filtered MRR, see :mod:`kept.kg.evaluate`).

Data (splits, epoch shuffling, negative sampling) is in :mod:`kept.kg.transe_data`.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kept.kg.evaluate import metrics_from_sums, pairwise_distance, rank_sums, ranks_for_batch
from kept.kg.transe_config import TransEConfig
from kept.kg.transe_kernels import Compiled
from kept.kg.transe_optim import LazyAdam

__all__ = ["TransEConfig", "TransE", "TransELightning", "TransELoss", "LazyAdam", "pairwise_distance",
           "triple_distance", "batch_rows", "batch_distances", "batch_loss", "rows_loss", "row_gradients", "row_norm",
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
    """Entity and relation tables and the TransE distance.

    Args:
        num_entities, num_relations: table sizes (store ids index the rows).
        dim: embedding size.
        p: 1 or 2, the distance norm.
        generator: seeds the initialisation (uniform in ±6/√dim, Bordes et al.; relations
            then scaled to unit L2 norm as in the paper; entities too when ``normalize``).
        normalize: start with unit-norm entity vectors.
    """

    def __init__(self, num_entities: int, num_relations: int, dim: int, p: int = 2,
                 generator: torch.Generator | None = None, normalize: bool = True):
        super().__init__()
        self.p = p
        self.entity = nn.Embedding(num_entities, dim)
        self.relation = nn.Embedding(num_relations, dim)
        bound = 6.0 / math.sqrt(dim)
        with torch.no_grad():
            self.entity.weight.uniform_(-bound, bound, generator=generator)
            self.relation.weight.uniform_(-bound, bound, generator=generator)
            self.relation.weight.div_(self.relation.weight.norm(dim=1, keepdim=True).clamp_min(1e-12))
        if normalize:
            self.normalize_entities_()

    @torch.no_grad()
    def normalize_entities_(self) -> None:
        """Scale every entity vector to unit L2 norm, in place (LazyAdam renormalises the rows it moves itself)."""
        weight = self.entity.weight
        weight.div_(weight.norm(dim=1, keepdim=True).clamp_min(1e-12))

    def lookup(self, triples: Tensor, corrupt_head: Tensor,
               negatives: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Vectors of a training batch (one lookup per table) and the mask of valid negatives.

        triples: [B, 3] (h, r, t) ids; corrupt_head: [B] bool, True = replace the head;
        negatives: [c, k] entity ids, chunk j's negatives shared by its C = ⌈B / c⌉ rows.
        Returns e_h, w_r, e_t [B, d], e_neg [c, k, d] and mask [B, k] (False where a
        negative is the entity it replaces, i.e. the corruption is the true triple).
        """
        B, (c, k) = triples.shape[0], negatives.shape
        entity_ids, relation_ids, mask = batch_rows(triples, corrupt_head, negatives)
        e_h, e_t, e_neg = self.entity(entity_ids).split([B, B, c * k])  # [B, d] x2, [c·k, d]
        return e_h, self.relation(relation_ids), e_t, e_neg.view(c, k, -1), mask

    def forward(self, triples: Tensor, corrupt_head: Tensor, negatives: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Distances of a batch of true triples and of their corruptions (arguments of :meth:`lookup`).

        Returns pos [B], neg [B, k] and the mask [B, k] of valid negatives.
        """
        e_h, w_r, e_t, e_neg, mask = self.lookup(triples, corrupt_head, negatives)
        pos, neg = batch_distances(e_h, w_r, e_t, e_neg, corrupt_head, self.p)
        return pos, neg, mask


def batch_rows(triples: Tensor, corrupt_head: Tensor, negatives: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The table rows a training batch reads, and the mask of its valid negatives.

    triples: [B, 3]; corrupt_head: [B] bool; negatives: [c, k] (chunk j's shared by its
    C = ⌈B / c⌉ rows). Returns entity ids [2B + c·k] (heads, tails, then the negatives
    row-major), relation ids [B] and mask [B, k] (False where a negative is the entity it
    replaces, i.e. the corruption is the true triple).
    """
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    B, c = triples.shape[0], negatives.shape[0]
    target = torch.where(corrupt_head, h, t)  # [B] the entity each corruption replaces
    neg_ids = negatives if c == B else negatives.repeat_interleave(-(-B // c), dim=0)[:B]  # [B, k]
    return torch.cat([h, t, negatives.reshape(-1)]), r, neg_ids != target.unsqueeze(1)


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


def rows_loss(entity_rows: Tensor, relation_rows: Tensor, corrupt_head: Tensor, mask: Tensor, p: int,
              margin: float, temperature: float) -> Tensor:
    """:func:`batch_loss` from the rows of :func:`batch_rows`: entity_rows [2B + c·k, d]
    (heads, tails, negatives), relation_rows [B, d]; the k negatives per chunk are mask's width."""
    B, k = mask.shape
    e_h, e_t, e_neg = entity_rows.split([B, B, entity_rows.shape[0] - 2 * B])
    return batch_loss(e_h, relation_rows, e_t, e_neg.view(-1, k, e_h.shape[1]), corrupt_head, mask, p, margin,
                      temperature)


def row_gradients(entity: Tensor, relation: Tensor, entity_ids: Tensor, relation_ids: Tensor, corrupt_head: Tensor,
                  mask: Tensor, p: int, margin: float, temperature: float) -> tuple[Tensor, Tensor, Tensor]:
    """Loss of a batch and its gradient w.r.t. the rows it reads, without an autograd graph.

    entity [N, d], relation [R, d]: the tables; the other arguments as :func:`batch_rows`
    returns them and :func:`batch_loss` takes them. Returns the loss [], d loss / d
    entity rows [2B + c·k, d] and d loss / d relation rows [B, d] (one row per id, duplicates
    not summed). Written with ``torch.func`` so that ``torch.compile`` fuses gather, loss and
    gradient into a few kernels.
    """
    def loss_of(entity_rows: Tensor, relation_rows: Tensor) -> Tensor:
        return rows_loss(entity_rows, relation_rows, corrupt_head, mask, p, margin, temperature)

    (entity_grad, relation_grad), loss = torch.func.grad_and_value(loss_of, argnums=(0, 1))(
        entity[entity_ids], relation[relation_ids])
    return loss, entity_grad, relation_grad


#: :func:`row_gradients` through torch.compile, for independent negatives on large tables
_row_gradients = Compiled(row_gradients)


def _table_gradient(rows: Tensor, row_grad: Tensor, shape: torch.Size, sparse: bool) -> Tensor:
    """The gradient of a [N, d] table from per-row gradients: sparse COO (duplicates left
    for the optimizer to sum, as nn.Embedding(sparse=True) gives them) or dense."""
    if sparse:
        return torch.sparse_coo_tensor(rows.unsqueeze(0), row_grad, shape, check_invariants=False)
    return row_grad.new_zeros(shape).index_add_(0, rows, row_grad)


class TransELoss(torch.autograd.Function):
    """The training loss of a batch; its gradient is computed in the forward, with the loss.

    ``TransELoss.apply(entity, relation, triples, corrupt_head, negatives, p, margin,
    temperature, sparse, compiled)`` returns the loss of :func:`batch_loss`; backward hands
    the tables their gradients (sparse rows when ``sparse``, for :class:`LazyAdam`; dense
    otherwise), so ``loss.backward()``, DDP's gradient hooks and any optimizer work as with
    ``nn.Embedding``. Why: a step is a few milliseconds, and an autograd graph of gathers,
    splits and a dozen small ops costs a large share of that; the loss and its row gradients
    are instead one function (:func:`row_gradients`), fused by torch.compile when ``compiled``.
    """

    @staticmethod
    def forward(ctx, entity: Tensor, relation: Tensor, triples: Tensor, corrupt_head: Tensor, negatives: Tensor,
                p: int, margin: float, temperature: float, sparse: bool, compiled: bool) -> Tensor:
        entity_ids, relation_ids, mask = batch_rows(triples, corrupt_head, negatives)
        if compiled:
            loss, entity_grad, relation_grad = _row_gradients(entity, relation, entity_ids, relation_ids,
                                                              corrupt_head, mask, p, margin, temperature)
        else:  # plain autograd on the gathered rows: less per-op overhead than torch.func when eager
            with torch.enable_grad():
                rows = entity[entity_ids].requires_grad_(), relation[relation_ids].requires_grad_()
                loss = rows_loss(*rows, corrupt_head, mask, p, margin, temperature)
                entity_grad, relation_grad = torch.autograd.grad(loss, rows)
            loss = loss.detach()
        # intermediates, not inputs or outputs: kept on ctx (not save_for_backward) so that backward can
        # drop them and autograd can take the gradients it receives as they are instead of cloning them
        ctx.rows = (entity_ids, entity_grad, relation_ids, relation_grad)
        ctx.shapes, ctx.sparse = (entity.shape, relation.shape), sparse
        return loss

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        entity_ids, entity_grad, relation_ids, relation_grad = ctx.rows
        del ctx.rows
        entity_shape, relation_shape = ctx.shapes
        # loss.backward() seeds 1: then no pass over the rows (checked on CPU only, where it costs no device sync)
        if grad_loss.device.type != "cpu" or float(grad_loss) != 1.0:
            entity_grad, relation_grad = entity_grad * grad_loss, relation_grad * grad_loss
        return (_table_gradient(entity_ids, entity_grad, entity_shape, ctx.sparse),
                _table_gradient(relation_ids, relation_grad, relation_shape, ctx.sparse),
                None, None, None, None, None, None, None, None)


# ---- Lightning wiring ---------------------------------------------------------------------------
class TransELightning(pl.LightningModule):
    """Trains :class:`TransE` with the loss, optimizer and renormalisation of a :class:`TransEConfig`.

    Batches come from :class:`kept.kg.transe_data.TransEDataModule`: a training item is a
    group of batches, dicts ``{"triples" [B, 3], "corrupt_head" [B], "negatives" [c, k]}``,
    each one optimizer step (:meth:`training_step`); validation and
    test batches are items of :class:`kept.kg.evaluate.EvalBatches`. Validation logs ``valid/mrr``,
    ``valid/hits@10``... (filtered, both directions), the metric early stopping watches.
    """

    def __init__(self, num_entities: int, num_relations: int, config: TransEConfig | dict | None = None):
        super().__init__()
        config = TransEConfig.from_dict(config) if isinstance(config, dict) else (config or TransEConfig())
        self.config = config
        self.save_hyperparameters({"num_entities": num_entities, "num_relations": num_relations,
                                   "config": config.to_dict()})
        generator = torch.Generator().manual_seed(config.seed)
        self.model = TransE(num_entities, num_relations, config.dim, config.norm, generator=generator,
                            normalize=config.normalize_entities)
        self._rank_sums: dict[str, list[Tensor]] = {}
        #: tables this large use torch.compile-fused kernels (kept.kg.transe_kernels)
        self._large = self.model.entity.weight.numel() >= COMPILE_FROM
        # Independent negatives make the loss a chain of small elementwise ops whose per-op
        # cost dominates a step: fused with the gathers and the gradient, they take less than
        # half the time. Shared negatives are one matrix product per chunk: nothing to gain there.
        self._compile_loss = self._large and config.chunk_size == 1
        # A step is a few milliseconds: Lightning's automatic-optimisation closure would add
        # a large share of that, so the step is written out (the same three calls).
        self.automatic_optimization = False

    def training_step(self, group: list[dict], batch_idx: int) -> Tensor:
        """One optimizer step per batch of the group (see :class:`kept.kg.transe_data.TrainBatches`)."""
        cfg = self.config
        optimizer = self.optimizers()
        sparse = cfg.optimizer == "sparse_adam"
        losses = []
        for batch in group:
            loss = TransELoss.apply(self.model.entity.weight, self.model.relation.weight, batch["triples"],
                                    batch["corrupt_head"], batch["negatives"], cfg.norm, cfg.margin,
                                    cfg.adversarial_temperature, sparse, self._compile_loss)
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            optimizer.step()
            if cfg.normalize_entities and not sparse:
                # dense Adam moves every entity: renormalise them all (LazyAdam renormalises the rows it moves)
                self.model.normalize_entities_()
            losses.append(loss.detach())
        loss = torch.stack(losses).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=sum(len(b["triples"]) for b in group))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.config.optimizer == "sparse_adam":
            groups = [{"params": [self.model.entity.weight], "unit_norm": self.config.normalize_entities},
                      {"params": [self.model.relation.weight]}]
            # a large model compiles the row update of both tables (the small relation table's
            # eager update is ~10 small ops: their fixed cost is what a compiled call removes)
            return LazyAdam(groups, lr=self.config.lr, compile_from=1 if self._large else 0)
        return torch.optim.Adam(self.parameters(), lr=self.config.lr, fused=True)

    # ---- evaluation: filtered ranks, accumulated as sums (reducible across processes) ----------
    def _eval_step(self, batch) -> None:
        entity = self.model.entity.weight  # [N, d]
        compiled = self.config.norm == 1 and entity.device.type == "cpu" and self._large
        ranks = ranks_for_batch(entity, self.model.relation.weight, batch, self.config.norm, compiled)
        for side, (optimistic, pessimistic) in ranks.items():
            self._rank_sums.setdefault(side, []).append(rank_sums(optimistic, pessimistic))

    def _eval_epoch_end(self, prefix: str) -> dict:
        sums = {side: self.trainer.strategy.reduce(torch.stack(v).sum(0), reduce_op="sum")
                for side, v in self._rank_sums.items()}
        self._rank_sums = {}
        metrics = metrics_from_sums(sums)
        for side, values in metrics.items():
            for name, value in values.items():
                if name != "count":
                    key = f"{prefix}/{name}" if side == "overall" else f"{prefix}/{side}/{name}"
                    self.log(key, value, prog_bar=side == "overall" and name == "mrr", sync_dist=False)
        return metrics

    @torch.no_grad()
    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("valid")

    @torch.no_grad()
    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")
