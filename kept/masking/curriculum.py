"""The Baidu ERNIE 1.0 curriculum: basic -> phrase -> entity masking, as a Lightning callback.

ERNIE trains in stages: basic-unit masking first, then phrase masking, then entity
masking. :class:`MaskingCurriculum` holds the stage boundaries (in optimizer steps)
and, when fitting starts, installs them as a plain :class:`CurriculumSchedule` on
the data module (``trainer.datamodule.curriculum``). The data module then masks
each batch at the level of that batch's own global step, computed from
``(epoch, batch index)`` where the batch is built -- so the switch is exact, in
every DataLoader worker, and after a resume. The callback also logs the level.
This module is apart from :mod:`kept.masking.ernie` so that DataLoader workers,
which only need the schedule, never import Lightning.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from kept.masking.ernie import LEVELS, CurriculumSchedule


class MaskingCurriculum(pl.Callback):
    """Baidu-ERNIE staged masking.

    boundaries: level -> first global step it is used, e.g. ``{"phrase": 1000, "entity": 2000}``.
    start: the first level (default "basic").

    The trainer's data module must have a ``curriculum`` attribute (kept's
    :class:`~kept.train.data.PretrainDataModule` has).
    """

    def __init__(self, boundaries: dict[str, int], start: str = "basic"):
        self.schedule = CurriculumSchedule(start, tuple(sorted((int(s), lvl) for lvl, s in boundaries.items())))

    def level_at(self, step: int) -> str:
        return self.schedule.level_at(step)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "curriculum"):
            raise RuntimeError("MaskingCurriculum needs a data module with a `curriculum` attribute "
                               "(e.g. kept.train.data.PretrainDataModule)")
        datamodule.curriculum = self.schedule

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        level = LEVELS.index(self.level_at(trainer.global_step))
        pl_module.log("masking_level", float(level), on_step=True, on_epoch=False, batch_size=1)
