"""TransE's LightningModule: loss, logging, the optimizer, entity renormalisation and validation."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor

from kept.kg.transe.config import TransEConfig
from kept.kg.transe.evaluate import metrics_from_sums, rank_sums, ranks_for_batch
from kept.kg.transe.model import (
    COMPILE_FROM,
    TransE,
    TransELoss,
    loss_and_gradient,
)
from kept.kg.transe.optim import LazyAdam


# ---- Lightning wiring ---------------------------------------------------------------------------
class TransELightning(pl.LightningModule):
    """Trains :class:`TransE` with the loss, optimizer and renormalisation of a :class:`TransEConfig`.

    Batches come from :class:`kept.kg.transe.data.TransEDataModule`: a training item is a
    group of batches, dicts ``{"triples" [B, 3], "corrupt_head" [B], "negatives" [c, k]}``,
    each one optimizer step (:meth:`training_step`); validation and
    test batches are items of :class:`kept.kg.transe.evaluate.EvalBatches`. Validation logs ``valid/mrr``,
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
                            normalize=config.normalize_entities, sparse=config.optimizer == "sparse_adam")
        self._rank_sums: dict[str, list[Tensor]] = {}
        #: tables this large use torch.compile-fused kernels (kept.kg.transe.kernels)
        self._large = self.model.entity.numel() >= COMPILE_FROM
        # Independent negatives make the loss a chain of small elementwise ops whose per-op
        # cost dominates a step: fused with the gathers and the gradient, they take less than
        # half the time. Shared negatives are one matrix product per chunk: nothing to gain there.
        self._compile_loss = self._large and config.chunk_size == 1
        # A step is a few milliseconds: Lightning's automatic-optimisation closure would add
        # a large share of that, so the step is written out (the same three calls).
        self.automatic_optimization = False

    def training_step(self, group: list[dict], batch_idx: int) -> Tensor:
        """One optimizer step per batch of the group (see :class:`kept.kg.transe.data.TrainBatches`)."""
        cfg = self.config
        optimizer = self.optimizers()
        table = self.model.weight
        sparse = cfg.optimizer == "sparse_adam"
        # In one process nothing needs to see a backward pass (no gradient sync), so the gradient
        # computed with the loss is handed to the optimizer as it is; with several processes it goes
        # through autograd (TransELoss), where DDP's hooks average it across processes.
        direct = self.trainer.world_size == 1
        losses = []
        for batch in group:
            args = (table, batch["triples"], batch["corrupt_head"], batch["negatives"], self.model.num_entities,
                    cfg.norm, cfg.margin, cfg.adversarial_temperature, sparse, self._compile_loss)
            if direct:
                loss, table.grad = loss_and_gradient(*args)
            else:
                loss = TransELoss.apply(*args)
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
            unit_norm_rows = self.model.num_entities if self.config.normalize_entities else 0
            # a large model compiles the row update (eager, it is ~10 small ops whose fixed cost is
            # what a compiled call removes)
            return LazyAdam([{"params": [self.model.weight], "unit_norm_rows": unit_norm_rows}], lr=self.config.lr,
                            compile_from=1 if self._large else 0)
        return torch.optim.Adam(self.parameters(), lr=self.config.lr, fused=True)

    # ---- evaluation: filtered ranks, accumulated as sums (reducible across processes) ----------
    def _eval_step(self, batch) -> None:
        entity = self.model.entity  # [N, d]
        compiled = self.config.norm == 1 and entity.device.type == "cpu" and self._large
        ranks = ranks_for_batch(entity, self.model.relation, batch, self.config.norm, compiled)
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
