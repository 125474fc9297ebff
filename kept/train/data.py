"""The data module of masked-LM pretraining (``mlm`` and ``ernie-baidu``).

Batches come from a :class:`~kept.data.examples.LinkedCorpus`. Each batch is a
pure function of ``(seed, epoch, batch index)``: :class:`SeededCollate` seeds the
masking generator from them and takes the masking level of the batch's global
step from the curriculum schedule (installed by
:class:`~kept.masking.curriculum.MaskingCurriculum`). So masking is dynamic (new
every epoch), the curriculum switches exactly at its boundaries in every worker,
and a resumed run is identical to an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from kept.data.examples import LinkedCorpus
from kept.data.loading import CorpusDataset, EpochBatchSampler, ResumableDataModule, split_indices
from kept.data.tokenizer import load_tokenizer, vocab_is_uncased
from kept.masking.ernie import CurriculumSchedule, UnitMaskingCollator
from kept.masking.facts import FactPairs


@dataclass
class SeededCollate:
    """Collate ``(epoch, batch index, example)`` items with masks seeded by the batch's identity.

    collator: the masking collator. seed: base seed. batches_per_epoch: for the global
    batch number. accumulate: batches per optimizer step. schedule: level per global
    step (None: the collator's own level).
    """

    collator: UnitMaskingCollator
    seed: int
    batches_per_epoch: int
    accumulate: int = 1
    schedule: CurriculumSchedule | None = None

    def __call__(self, items: list) -> dict[str, torch.Tensor]:
        epoch, batch_index = items[0][0], items[0][1]
        step = (epoch * self.batches_per_epoch + batch_index) // self.accumulate
        level = self.schedule.level_at(step) if self.schedule else None
        generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, epoch, batch_index]).generate_state(1, np.uint64)[0] >> 1))
        return self.collator([ex for _, _, ex in items], generator=generator, level=level)


def linked_store(corpus: str | Path) -> str:
    """The KG store a linked corpus was linked against (its meta.json ``store``); an error when none."""
    import json

    meta = Path(corpus) / "meta.json"
    store = json.loads(meta.read_text()).get("store") if meta.exists() else None
    if not store:
        raise ValueError(f"{meta}: the corpus records no KG store (built without entity links): pass fact_store")
    return store


class PretrainDataModule(ResumableDataModule):
    """Masked batches from a linked corpus.

    Args:
        corpus: a linked-corpus directory (``kept data build`` writes one).
        vocab: the BERT ``vocab.txt`` the corpus was tokenised with (or a tokenizer directory).
        masking: masking level when no curriculum is given: ``token`` (plain BERT MLM, default),
            ``basic``, ``word``, ``phrase`` or ``entity``.
        batch_size: examples per batch (default 32).
        max_length: tokens per sequence including [CLS]/[SEP] (default 128).
        mask_prob: share of tokens (or units) selected for prediction (default 0.15).
        num_workers: DataLoader worker processes (default 0; ``--workers`` sets it).
        seed: order and masking seed (default 0).
        val_fraction: share of examples held out for validation (default 0.02, at least one
            example when > 0; 0 disables validation).
        fact_mask_prob: probability of masking, whole, each linked span that is the object of a
            fact whose subject is linked in the same sentence (:mod:`kept.masking.facts`; default 0).
        fact_store: the KG store those facts come from (default None: the store the corpus was
            linked against, as its meta.json records).
    """

    def __init__(self, corpus: str, vocab: str, masking: str = "token", batch_size: int = 32,
                 max_length: int = 128, mask_prob: float = 0.15, num_workers: int = 0, seed: int = 0,
                 val_fraction: float = 0.02, fact_mask_prob: float = 0.0, fact_store: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = load_tokenizer(vocab)
        facts = FactPairs(fact_store or linked_store(corpus)) if fact_mask_prob > 0 else None
        self.collator = UnitMaskingCollator(self.tokenizer, max_length=max_length, level=masking,
                                            mask_prob=mask_prob, seed=seed, facts=facts,
                                            fact_mask_prob=fact_mask_prob)
        self.curriculum: CurriculumSchedule | None = None  # set by MaskingCurriculum
        self.corpus: LinkedCorpus | None = None

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is not None:
            return
        self.corpus = LinkedCorpus(self.hparams.corpus, vocab_size=len(self.tokenizer))
        self.val_indices, self.train_indices = split_indices(len(self.corpus), self.hparams.seed,
                                                             self.hparams.val_fraction)

    def train_dataloader(self) -> DataLoader:
        dataset = CorpusDataset(self.corpus, self.train_indices)
        batches = len(EpochBatchSampler(len(dataset), self.hparams.batch_size))
        accumulate = self.trainer.accumulate_grad_batches if self.trainer is not None else 1
        collate = SeededCollate(self.collator, self.hparams.seed, batches, accumulate, self.curriculum)
        return self.train_loader(dataset, collate, self.hparams.batch_size, self.hparams.seed,
                                 self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        if len(self.val_indices) == 0:
            return []
        # epoch fixed at 0 and no shuffling: the same masked validation batches every time
        sampler = EpochBatchSampler(len(self.val_indices), self.hparams.batch_size, shuffle=False)
        level = self.curriculum.boundaries[-1][1] if self.curriculum and self.curriculum.boundaries else None
        collate = SeededCollate(self.collator, self.hparams.seed + 1, len(sampler),
                                schedule=CurriculumSchedule(level) if level else None)
        return DataLoader(CorpusDataset(self.corpus, self.val_indices), batch_sampler=sampler,
                          collate_fn=collate, num_workers=0)


__all__ = ["PretrainDataModule", "SeededCollate", "load_tokenizer", "mlm_benchmark_batch", "vocab_is_uncased"]


def mlm_benchmark_batch(corpus: str | Path | LinkedCorpus, store: str | Path | None, vocab: str | Path,
                        batch_size: int = 32, seq_len: int = 128, seed: int = 0) -> dict[str, torch.Tensor]:
    """A plain token-level masked-LM batch from a real corpus, padded to exactly ``seq_len`` tokens.

    corpus: a linked corpus (path or opened). store: unused (the common benchmark signature of
    :mod:`kept.methods`). vocab: its vocab.txt. batch_size / seq_len: the shape (defaults 32 / 128).
    seed: draws the sentences and the masks (default 0).
    """
    corpus = corpus if isinstance(corpus, LinkedCorpus) else LinkedCorpus(corpus)
    indices = np.random.default_rng(seed).choice(len(corpus), batch_size, replace=len(corpus) < batch_size)
    collator = UnitMaskingCollator(load_tokenizer(vocab), max_length=seq_len, level="token", pad_to_multiple_of=seq_len)
    return collator([corpus[int(i)] for i in indices], generator=torch.Generator().manual_seed(seed))
