"""Lightning progress bars that show what a person reads: the step out of the run's steps, the
logged metrics, and no bookkeeping.

Lightning's own bars add ``v_num`` (the logger's version number) to every update, and its Rich bar
describes a step-bounded run (``max_epochs`` −1, the default of ``kept pretrain``) as "Epoch 0/-2".
Here the description is ``step S/MAX`` for a run bounded by ``--trainer.max_steps`` and
``epoch E/MAX`` for one bounded by epochs (``kept kg embed``), and ``v_num`` is gone.
:func:`progress_bar` returns the Rich variant when ``rich`` is installed (as Lightning picks),
else the tqdm one.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar

#: metrics Lightning adds to the bar that say nothing about the run
HIDDEN_METRICS = ("v_num",)


def run_description(trainer: pl.Trainer) -> str:
    """``step S/MAX`` when the run is bounded by steps (``max_epochs`` −1 or None with ``max_steps`` > 0),
    else ``epoch E/MAX`` (1-based), or ``epoch E`` without a bound."""
    max_steps, max_epochs = trainer.max_steps, trainer.max_epochs
    if (max_epochs is None or max_epochs < 0) and max_steps is not None and max_steps > 0:
        return f"step {trainer.global_step}/{max_steps}"
    if max_epochs is not None and max_epochs > 0:
        return f"epoch {trainer.current_epoch + 1}/{max_epochs}"
    return f"epoch {trainer.current_epoch + 1}"


def _shown(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in HIDDEN_METRICS}


class KeptTQDMProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar without ``v_num``, described by :func:`run_description`."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        return _shown(super().get_metrics(trainer, pl_module))

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(run_description(trainer), refresh=False)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        bar = self.train_progress_bar
        if bar is not None and self._should_update(batch_idx + 1, bar.total):
            bar.set_description(run_description(trainer), refresh=False)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class KeptRichProgressBar(RichProgressBar):
    """Lightning's Rich bar without ``v_num`` and without "Epoch 0/-2", described by :func:`run_description`."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        return _shown(super().get_metrics(trainer, pl_module))

    def _get_train_description(self, current_epoch: int) -> str:
        description = run_description(self.trainer)
        if len(self.validation_description) > len(description):  # as Lightning: no flicker beside "Validation"
            description = f"{description:{len(self.validation_description)}}"
        return description

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.progress is not None and self.is_enabled and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id, description=self._get_train_description(0))
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


def progress_bar() -> ProgressBar:
    """The bar kept's trainers use: :class:`KeptRichProgressBar` when ``rich`` imports, else
    :class:`KeptTQDMProgressBar` (Lightning's own choice between the two)."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return KeptTQDMProgressBar()
    return KeptRichProgressBar()


def with_progress_bar(callbacks: list, enabled: bool | None) -> list:
    """``callbacks`` plus :func:`progress_bar` unless the bar is off (``enabled`` False) or a progress
    bar is already among them (the user's choice stays)."""
    if enabled is False or any(isinstance(c, ProgressBar) for c in callbacks):
        return list(callbacks)
    return [*callbacks, progress_bar()]
