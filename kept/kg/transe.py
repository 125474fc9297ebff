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

__all__ = ["TransEConfig", "TransE", "TransELightning", "LazyAdam", "pairwise_distance", "triple_distance",
           "batch_distances", "batch_loss", "row_norm", "margin_ranking_loss", "self_adversarial_loss"]

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
        sparse: sparse gradients (rows of the batch only), for the lazy ``SparseAdam``.
        generator: seeds the initialisation (uniform in ±6/√dim, Bordes et al.; relations
            then scaled to unit L2 norm as in the paper; entities too when ``normalize``).
        normalize: start with unit-norm entity vectors.
    """

    def __init__(self, num_entities: int, num_relations: int, dim: int, p: int = 2, sparse: bool = True,
                 generator: torch.Generator | None = None, normalize: bool = True):
        super().__init__()
        self.p = p
        self.entity = nn.Embedding(num_entities, dim, sparse=sparse)
        self.relation = nn.Embedding(num_relations, dim, sparse=sparse)
        bound = 6.0 / math.sqrt(dim)
        with torch.no_grad():
            self.entity.weight.uniform_(-bound, bound, generator=generator)
            self.relation.weight.uniform_(-bound, bound, generator=generator)
            self.relation.weight.div_(self.relation.weight.norm(dim=1, keepdim=True).clamp_min(1e-12))
        if normalize:
            self.normalize_entities_()

    @torch.no_grad()
    def normalize_entities_(self, ids: Tensor | None = None) -> None:
        """Scale entity vectors (all, or the rows ``ids``) to unit L2 norm, in place."""
        weight = self.entity.weight
        if ids is None:
            weight.div_(weight.norm(dim=1, keepdim=True).clamp_min(1e-12))
        else:
            rows = weight[ids]  # [u, d]
            weight[ids] = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def lookup(self, triples: Tensor, corrupt_head: Tensor,
               negatives: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Vectors of a training batch (one lookup per table) and the mask of valid negatives.

        triples: [B, 3] (h, r, t) ids; corrupt_head: [B] bool, True = replace the head;
        negatives: [c, k] entity ids, chunk j's negatives shared by its C = ⌈B / c⌉ rows.
        Returns e_h, w_r, e_t [B, d], e_neg [c, k, d] and mask [B, k] (False where a
        negative is the entity it replaces, i.e. the corruption is the true triple).
        """
        h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
        B, (c, k) = triples.shape[0], negatives.shape
        entities = self.entity(torch.cat([h, t, negatives.reshape(-1)]))  # [2B + c·k, d]
        e_h, e_t, e_neg = entities.split([B, B, c * k])  # split, not slices: its backward is one cat
        e_neg = e_neg.view(c, k, -1)
        target = torch.where(corrupt_head, h, t)  # [B] the entity each corruption replaces
        neg_ids = negatives if c == B else negatives.repeat_interleave(-(-B // c), dim=0)[:B]  # [B, k]
        return e_h, self.relation(r), e_t, e_neg, neg_ids != target.unsqueeze(1)

    def forward(self, triples: Tensor, corrupt_head: Tensor, negatives: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Distances of a batch of true triples and of their corruptions (arguments of :meth:`lookup`).

        Returns pos [B], neg [B, k] and the mask [B, k] of valid negatives.
        """
        e_h, w_r, e_t, e_neg, mask = self.lookup(triples, corrupt_head, negatives)
        pos, neg = batch_distances(e_h, w_r, e_t, e_neg, corrupt_head, self.p)
        return pos, neg, mask


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


#: :func:`batch_loss` fused by torch.compile (forward and backward), for independent negatives on large tables
_batch_loss = Compiled(batch_loss)


# ---- Lightning wiring ---------------------------------------------------------------------------
class TransELightning(pl.LightningModule):
    """Trains :class:`TransE` with the loss, optimizer and renormalisation of a :class:`TransEConfig`.

    Batches come from :class:`kept.kg.transe_data.TransEDataModule`: training batches are
    dicts ``{"triples" [B, 3], "corrupt_head" [B], "negatives" [c, k]}``; validation and
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
        self.model = TransE(num_entities, num_relations, config.dim, config.norm,
                            sparse=config.optimizer == "sparse_adam", generator=generator,
                            normalize=config.normalize_entities)
        self._rank_sums: dict[str, list[Tensor]] = {}
        #: tables this large use torch.compile-fused kernels (kept.kg.transe_kernels)
        self._large = self.model.entity.weight.numel() >= COMPILE_FROM
        # Independent negatives make the loss a chain of small elementwise ops whose per-op
        # cost dominates a step; fused, forward + backward take about a third less time. Shared
        # negatives are one matrix product per chunk: nothing to gain there.
        self._compile_loss = self._large and config.chunk_size == 1
        # A step is a few milliseconds: Lightning's automatic-optimisation closure would add
        # a large share of that, so the step is written out (the same three calls).
        self.automatic_optimization = False

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        cfg = self.config
        optimizer = self.optimizers()
        vectors = self.model.lookup(batch["triples"], batch["corrupt_head"], batch["negatives"])
        loss = _batch_loss(*vectors[:4], batch["corrupt_head"], vectors[4], cfg.norm, cfg.margin,
                           cfg.adversarial_temperature, compiled=self._compile_loss)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()
        if cfg.normalize_entities and cfg.optimizer == "adam":
            # dense Adam moves every entity: renormalise them all (LazyAdam renormalises the rows it moves)
            self.model.normalize_entities_()
        if batch_idx % 10 == 0:  # self.log costs about as much as a small step: every 10th suffices
            self.log("train/loss", loss.detach(), prog_bar=True, batch_size=len(batch["triples"]))
        return loss.detach()

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
