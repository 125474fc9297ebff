"""What every pretraining LightningModule shares: seeding, logging, the optimizer.

A method subclasses :class:`PretrainModule` and implements :meth:`losses`, which
returns a dict of named scalar tensors with the total under ``"loss"`` (e.g.
``{"loss": mlm + dea, "mlm": mlm, "dea": dea, "dea_acc": acc}``). The base logs
every entry as ``train/<name>`` and ``val/<name>``, seeds dropout per step so a
resumed run is bit-identical, and builds AdamW with linear warm-up and decay.
The math stays in ``nn.Module``s and pure functions next to each method.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from transformers import get_linear_schedule_with_warmup


class PretrainModule(pl.LightningModule):
    """Base of kept's pretraining modules.

    Subclasses call ``save_hyperparameters()`` with at least ``lr``,
    ``weight_decay``, ``warmup_steps`` and ``seed`` among their arguments, and
    implement :meth:`losses`.
    """

    # Subclasses define ``losses(batch) -> dict[str, Tensor]``: named scalar losses/metrics of a
    # batch, ``"loss"`` being the one optimised.

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.losses(batch)["loss"]

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Dropout draws from the global RNG; seeding it from (seed, step, rank) makes
        # every step a pure function of the step, so a resumed run is bit-identical.
        torch.manual_seed(hash((self.hparams.seed, self.global_step, self.global_rank)) % 2**63)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        size = batch["input_ids"].shape[0]
        for name, value in out.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=size)
        return out["loss"]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self.losses(batch)
        size = batch["input_ids"].shape[0]
        for name, value in out.items():
            self.log(f"val/{name}", value, prog_bar=name == "loss", batch_size=size, sync_dist=True)

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": self.hparams.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = get_linear_schedule_with_warmup(optimizer, min(self.hparams.warmup_steps, total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
