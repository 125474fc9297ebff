"""Deterministic, resumable batching over a LinkedCorpus.

Every batch is a pure function of ``(seed, epoch, batch_index)``: the order of
examples in an epoch is a permutation drawn from ``(seed, epoch)``, and each
batch carries ``(epoch, batch_index)`` so the collator can seed its (dynamic)
masking from them. Hence the masks differ every epoch, yet a run resumed from a
checkpoint sees exactly the batches an uninterrupted run would have seen, with
any number of loader workers: the data module only has to remember how many
batches of the epoch were consumed (:class:`ResumableDataModule`, whose state
Lightning saves in its checkpoints).

Why the data module and not the loader: Lightning restores a stateful loader
only if the loader is created after the checkpoint is loaded, but a scheduler
that asks for ``trainer.estimated_stepping_batches`` creates it before. The
sampler here takes the resume point lazily, at its next ``__iter__``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from kept.data.examples import LinkedCorpus, LinkedExample


def split_indices(num_examples: int, seed: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split of ``range(num_examples)``: ``(val_indices, train_indices)``, sorted.

    val_fraction: share held out (at least one example when > 0 and there are two or more; 0
    disables validation). The permutation depends on ``seed`` only, so every data module of a
    run (and a resumed run) holds out the same examples.
    """
    order = np.random.default_rng([seed, 2**31]).permutation(num_examples)
    n_val = 0 if val_fraction <= 0 or num_examples < 2 else max(1, round(num_examples * val_fraction))
    return np.sort(order[:n_val]), np.sort(order[n_val:])


class EpochBatchSampler:
    """Yields lists of ``(epoch, batch_index, example_index)`` for one epoch.

    num_examples: dataset size. batch_size: examples per batch.
    seed: base seed of the per-epoch permutation. shuffle: permute (default True).
    drop_last: drop the last incomplete batch (default False).
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = False):
        self.num_examples, self.batch_size = num_examples, batch_size
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.epoch = 0
        self.skip = 0  # batches of the current epoch already consumed (set on resume)
        self.sampler = self  # Lightning calls ``batch_sampler.sampler.set_epoch(epoch)``

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(self.num_examples, self.batch_size)
        return full if self.drop_last or not rest else full + 1

    def order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_examples)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.num_examples)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        order = self.order().tolist()
        start, self.skip = self.skip, 0
        for b in range(start, len(self)):
            yield [(self.epoch, b, i) for i in order[b * self.batch_size : (b + 1) * self.batch_size]]


class CorpusDataset(Dataset):
    """``dataset[(epoch, batch_index, i)] -> (epoch, batch_index, LinkedExample)``."""

    def __init__(self, corpus: LinkedCorpus, indices: np.ndarray | None = None):
        self.corpus = corpus
        self.indices = np.arange(len(corpus)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[int, int, LinkedExample]:
        epoch, batch_index, i = key
        return epoch, batch_index, self.corpus[int(self.indices[i])]


class ResumableDataModule(pl.LightningDataModule):
    """Base data module whose training batches resume exactly mid-epoch.

    Subclasses build the dataset and collator and call :meth:`train_loader`.
    The checkpointed state is ``{"epoch", "consumed"}``: the epoch and the batches
    of it the training loop has processed.
    """

    def __init__(self) -> None:
        super().__init__()
        self._train_sampler: EpochBatchSampler | None = None
        self._resume: dict[str, int] | None = None

    def train_loader(self, dataset: CorpusDataset, collate_fn: Callable[[list], Any], batch_size: int, seed: int,
                     num_workers: int = 0) -> DataLoader:
        self._train_sampler = EpochBatchSampler(len(dataset), batch_size, seed=seed)
        self._apply_resume()
        return DataLoader(dataset, batch_sampler=self._train_sampler, collate_fn=collate_fn,
                          num_workers=num_workers, persistent_workers=num_workers > 0)

    def state_dict(self) -> dict[str, int]:
        if self.trainer is None:
            return {}
        return {"epoch": self.trainer.current_epoch,
                "consumed": self.trainer.fit_loop.epoch_loop.batch_progress.current.processed}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume = dict(state_dict) or None
        self._apply_resume()

    def _apply_resume(self) -> None:
        if self._resume and self._train_sampler is not None:
            self._train_sampler.epoch = self._resume["epoch"]
            self._train_sampler.skip = self._resume["consumed"]
            self._resume = None
