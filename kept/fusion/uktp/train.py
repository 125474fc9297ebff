"""ERNIE 3.0 universal knowledge-text prediction (UKTP): the module, the data module, a benchmark batch.

A KG triple and a sentence mentioning its head and tail are concatenated as
``[CLS] head relation tail [SEP] sentence [SEP]`` (token types 0 / 1); a whole triple
element and 15 % of the sentence tokens are masked, so the model must use the
sentence to restore the triple and the triple to restore the sentence. A share
``uktp_fraction`` of the batches are such pairs, the rest plain masked-LM batches over
all sentences (a sentence without a matching triple still serves plain MLM).

The model is a stock ``BertForMaskedLM``: UKTP costs nothing per step beyond the
longer input, and the export is a plain Hugging Face directory (+ ``kept.json``).
The pairing, labels, layout and masking rule live in :mod:`kept.fusion.uktp.data`;
``docs/uktp.md`` describes them and the batch mix.

Batch mix: an epoch has ``ceil(num_examples / batch_size)`` full batches; batch ``b``
is a UKTP batch iff ``floor((b + 1) f) > floor(b f)`` for ``f = uktp_fraction`` (an exact
share, evenly spread). UKTP batches read the examples paired with a triple, plain
batches all examples, each kind from its own stream of seeded permutations, so every
batch is a pure function of ``(seed, epoch, batch index)`` and resuming is exact.

    kept pretrain --method uktp --config experiments/demo/pretrain.yaml --config experiments/demo/uktp.yaml
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from kept.data.examples import LinkedCorpus, LinkedExample
from kept.data.loading import EpochBatchSampler, ResumableDataModule, split_indices
from kept.data.tokenizer import load_tokenizer
from kept.fusion.uktp.data import (
    TriplePairing,
    UktpCollator,
    build_label_tables,
    choose_triples,
    load_pairing,
)
from kept.masking.ernie import UnitMaskingCollator
from kept.masking.facts import FactPairs
from kept.train.mlm import MaskedLMModule, predicted_logits


# ---- mixing UKTP and plain-MLM batches -----------------------------------------------------------
def _rational(fraction: float) -> Fraction:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"uktp_fraction must lie in [0, 1], got {fraction}")
    return Fraction(fraction).limit_denominator(10**6)


def uktp_batches_before(batch_index: int, fraction: float) -> int:
    """How many of the batches ``0..batch_index-1`` of an epoch are UKTP batches: ``floor(batch_index * fraction)``."""
    f = _rational(fraction)
    return batch_index * f.numerator // f.denominator


def is_uktp_batch(batch_index: int, fraction: float) -> bool:
    """Batch ``batch_index`` is a UKTP batch iff ``floor((b + 1) f) > floor(b f)``: evenly spread, exact share."""
    return uktp_batches_before(batch_index + 1, fraction) > uktp_batches_before(batch_index, fraction)


class MixedBatchSampler(EpochBatchSampler):
    """Batches of an epoch mixing UKTP batches (drawn from the paired examples) and plain-MLM batches (all examples).

    An epoch has ``ceil(num_examples / batch_size)`` full batches; batch b is a UKTP
    batch per :func:`is_uktp_batch`. Each kind reads its own stream: the concatenation
    of permutations of its pool drawn from ``(seed, epoch, kind, pass)``, so the k-th
    batch of a kind takes stream items ``k*B .. (k+1)*B - 1`` and every batch is a pure
    function of ``(seed, epoch, batch index)`` (exact mid-epoch resume by skipping).

    num_examples: dataset size. paired_positions: int [P] dataset positions with at least
    one triple. batch_size, seed, shuffle: as :class:`EpochBatchSampler`. uktp_fraction:
    share of UKTP batches (0..1; forced to 0 when no position is paired and ``strict`` is False).
    """

    def __init__(self, num_examples: int, paired_positions: np.ndarray, batch_size: int, uktp_fraction: float,
                 seed: int = 0, shuffle: bool = True, strict: bool = True):
        super().__init__(num_examples, batch_size, seed=seed, shuffle=shuffle)
        _rational(uktp_fraction)
        self.paired = np.asarray(paired_positions, dtype=np.int64)
        self.everything = np.arange(num_examples)
        if uktp_fraction > 0 and len(self.paired) == 0:
            if strict:
                raise ValueError("no example is paired with a triple, so no UKTP batch can be built "
                                 "(check the corpus was linked against this store, or set uktp_fraction 0)")
            uktp_fraction = 0.0
        self.uktp_fraction = uktp_fraction
        self._perms: dict[tuple[int, int, int], np.ndarray] = {}

    def _stream(self, kind: int, start: int, count: int) -> np.ndarray:
        pool = self.paired if kind == 1 else self.everything
        n = len(pool)
        out = []
        for p in range(start // n, (start + count - 1) // n + 1):
            if (self.epoch, kind, p) not in self._perms:
                if len(self._perms) > 8:
                    self._perms.clear()
                order = (np.random.default_rng([self.seed, self.epoch, kind, p]).permutation(n) if self.shuffle
                         else np.arange(n))
                self._perms[(self.epoch, kind, p)] = pool[order]
            out.append(self._perms[(self.epoch, kind, p)])
        return np.concatenate(out)[start - (start // n) * n :][:count]

    def batch_positions(self, batch_index: int) -> np.ndarray:
        """int64 [B] dataset positions of batch ``batch_index`` of the current epoch."""
        uktp_before = uktp_batches_before(batch_index, self.uktp_fraction)
        if is_uktp_batch(batch_index, self.uktp_fraction):
            return self._stream(1, uktp_before * self.batch_size, self.batch_size)
        return self._stream(0, (batch_index - uktp_before) * self.batch_size, self.batch_size)

    def __len__(self) -> int:
        return -(-self.num_examples // self.batch_size)

    def __iter__(self):
        start, self.skip = self.skip, 0
        for b in range(start, len(self)):
            yield [(self.epoch, b, int(i)) for i in self.batch_positions(b)]


def batch_generator(seed: int, epoch: int, batch_index: int) -> torch.Generator:
    """The generator of one batch's random draws, seeded from ``(seed, epoch, batch index)``."""
    state = np.random.SeedSequence([seed, epoch, batch_index]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state >> 1))


@dataclass
class UktpCollate:
    """Collate ``(epoch, batch index, corpus index, example)`` items: a UKTP or a plain-MLM batch by batch index.

    uktp: the triple + sentence collator. mlm: the plain collator (token level). pairing: the
    corpus pairing (indexed by corpus index). uktp_fraction: share of UKTP batches. seed: base seed.
    """

    uktp: UktpCollator
    mlm: UnitMaskingCollator
    pairing: TriplePairing
    uktp_fraction: float
    seed: int

    def __call__(self, items: list) -> dict[str, torch.Tensor]:
        epoch, batch_index = items[0][0], items[0][1]
        generator = batch_generator(self.seed, epoch, batch_index)
        examples = [ex for *_, ex in items]
        if is_uktp_batch(batch_index, self.uktp_fraction):
            triples = choose_triples(self.pairing, np.array([i for _, _, i, _ in items]), generator)
            return self.uktp(examples, triples, generator)
        return self.mlm(examples, generator=generator, level="token")


# ---- the module and the data module --------------------------------------------------------------
def uktp_losses(logits: torch.Tensor, labels: torch.Tensor,
                triple_tokens: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Masked-LM losses of a batch, split by where the predicted token sits.

    logits: [B, L, V]. labels: int64 [B, L], -100 where not predicted.
    triple_tokens: bool [B, L] True on triple tokens (UKTP batches), None for plain-MLM batches.
    Returns ``loss`` (mean cross-entropy over all predicted tokens; 0 when none) and, for a
    UKTP batch, ``triple`` and ``sentence`` (means over the predicted tokens of each part),
    for a plain batch ``mlm`` (= loss, detached).
    """
    predicted = labels != -100                                                                # [B, L]
    token_loss = torch.nn.functional.cross_entropy(logits[predicted].float(), labels[predicted],
                                                   reduction="none")                         # [P]
    loss = token_loss.sum() / predicted.sum().clamp(min=1)
    if triple_tokens is None:
        return {"loss": loss, "mlm": loss.detach()}
    on_triple = triple_tokens[predicted].to(token_loss.dtype)                                 # [P]
    triple = (token_loss * on_triple).sum() / on_triple.sum().clamp(min=1)
    sentence = (token_loss * (1 - on_triple)).sum() / (1 - on_triple).sum().clamp(min=1)
    return {"loss": loss, "triple": triple.detach(), "sentence": sentence.detach()}


class UktpModule(MaskedLMModule):
    """UKTP pretraining of a stock ``BertForMaskedLM``; arguments as :class:`MaskedLMModule`.

    Logs ``loss`` on every batch, ``triple`` / ``sentence`` (the loss over predicted
    triple / sentence tokens) on UKTP batches and ``mlm`` on plain-MLM batches.
    """

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits, predicted = predicted_logits(self.model, batch)                                # [P, V], [B, L]
        triple = batch.get("triple_tokens")
        return uktp_losses(logits[None], batch["labels"][predicted][None],                     # as one row [1, P]
                           None if triple is None else triple[predicted][None])

    def export_hf(self, out: str | Path, tokenizer) -> Path:
        """A stock ``BertForMaskedLM`` directory (weights, config, tokenizer) plus ``kept.json`` {"method": "uktp"}."""
        out = super().export_hf(out, tokenizer)
        (Path(out) / "kept.json").write_text(json.dumps({"method": "uktp"}, indent=2) + "\n")
        return Path(out)


class _IndexedCorpus(Dataset):
    """``dataset[(epoch, batch index, position)] -> (epoch, batch index, corpus index, LinkedExample)``."""

    def __init__(self, corpus: LinkedCorpus, indices: np.ndarray):
        self.corpus, self.indices = corpus, np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[int, int, int, LinkedExample]:
        epoch, batch_index, position = key
        i = int(self.indices[position])
        return epoch, batch_index, i, self.corpus[i]


class UktpDataModule(ResumableDataModule):
    """Batches mixing triple + sentence (UKTP) and plain masked-LM batches from a linked corpus and its KG store.

    Args:
        corpus: a linked-corpus directory (``kept data build``), linked against ``store``.
        vocab: the BERT ``vocab.txt`` the corpus was tokenised with (or a tokenizer directory).
        store: the KG store directory the corpus was linked against (``--store`` sets it).
        uktp_fraction: share of batches that are triple + sentence (default 0.5), spread evenly
            over the batch indices of an epoch; the rest are plain token-level MLM over all sentences.
        triple_elements: the triple element masked in a UKTP sequence is drawn uniformly from these
            (default ``[relation]``, as the ERNIE 3.0 paper: the sentence names the head and the tail,
            so masking those can be solved by copying; ``[head, relation, tail]`` for the uniform draw).
        batch_size: sequences per batch (default 32).
        max_length: tokens per sequence including specials and the triple (default 128).
        mask_prob: sentence token masking rate (default 0.15).
        max_label_tokens: wordpieces kept of each triple element's label (default 16).
        num_workers: DataLoader worker processes (default 0; ``--workers`` sets it).
        seed: order, pairing choice and masking seed (default 0).
        val_fraction: share of examples held out for validation (default 0.02; 0 disables it).
        cache_pairs: cache the corpus/store pairing in the corpus directory (default True).
        fact_mask_prob: fact masking of the plain-MLM batches over ``store``
            (:mod:`kept.masking.facts`; default 0).
    """

    def __init__(self, corpus: str, vocab: str, store: str, uktp_fraction: float = 0.5,
                 triple_elements: Sequence[str] = ("relation",), batch_size: int = 32,
                 max_length: int = 128, mask_prob: float = 0.15, max_label_tokens: int = 16, num_workers: int = 0,
                 seed: int = 0, val_fraction: float = 0.02, cache_pairs: bool = True, fact_mask_prob: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        if not 0.0 <= uktp_fraction <= 1.0:
            raise ValueError(f"uktp_fraction must lie in [0, 1], got {uktp_fraction}")
        self.tokenizer = load_tokenizer(vocab)
        self.mlm_collator = UnitMaskingCollator(self.tokenizer, max_length=max_length, level="token",
                                                mask_prob=mask_prob, seed=seed, fact_mask_prob=fact_mask_prob,
                                                facts=FactPairs(store) if fact_mask_prob > 0 else None)
        self.corpus: LinkedCorpus | None = None
        self.pairing: TriplePairing | None = None
        self.uktp_collator: UktpCollator | None = None

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is not None:
            return
        from kept.kg import open_store

        hp = self.hparams
        self.corpus, store = LinkedCorpus(hp.corpus, vocab_size=len(self.tokenizer)), open_store(hp.store)
        self.pairing = load_pairing(self.corpus, store, cache=hp.cache_pairs)
        entity_labels, relation_labels = build_label_tables(store, self.pairing, self.tokenizer, hp.max_label_tokens)
        self.uktp_collator = UktpCollator(self.tokenizer, entity_labels, relation_labels, hp.max_length,
                                          hp.mask_prob, tuple(hp.triple_elements))
        self.val_indices, self.train_indices = split_indices(len(self.corpus), hp.seed, hp.val_fraction)

    def _loader(self, indices: np.ndarray, seed: int, shuffle: bool, strict: bool) -> DataLoader:
        hp = self.hparams
        paired = np.flatnonzero(self.pairing.counts[indices] > 0)                       # positions in `indices`
        sampler = MixedBatchSampler(len(indices), paired, hp.batch_size, hp.uktp_fraction, seed=seed,
                                    shuffle=shuffle, strict=strict)
        collate = UktpCollate(self.uktp_collator, self.mlm_collator, self.pairing, sampler.uktp_fraction, seed)
        workers = hp.num_workers if shuffle else 0
        if shuffle:  # the training sampler: resumable mid-epoch (see ResumableDataModule)
            self._train_sampler = sampler
            self._apply_resume()
        return DataLoader(_IndexedCorpus(self.corpus, indices), batch_sampler=sampler, collate_fn=collate,
                          num_workers=workers, persistent_workers=workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_indices, self.hparams.seed, shuffle=True, strict=True)

    def val_dataloader(self) -> DataLoader | list:
        if len(self.val_indices) == 0:
            return []
        # epoch 0, no shuffling, its own seed: the same batches every validation; a validation set
        # without any paired sentence is validated with plain-MLM batches only
        return self._loader(self.val_indices, self.hparams.seed + 1, shuffle=False, strict=False)


def benchmark_batch(store: str | Path | Any, corpus: str | Path | LinkedCorpus, vocab: str | Path,
                    batch_size: int = 32, seq_len: int = 128, kind: str = "uktp", seed: int = 0,
                    max_label_tokens: int = 16) -> dict[str, torch.Tensor]:
    """A training batch from real data, padded to exactly ``seq_len`` tokens, for step-time benchmarks.

    store / corpus: a KG store and a corpus linked against it (paths or opened objects), e.g.
        ``runs/demo/stores/trex`` and ``runs/demo/corpus/trex``. vocab: the corpus's vocab.txt.
    batch_size: sequences (default 32). seq_len: total sequence length, specials included (128).
    kind: ``"uktp"`` (triple + sentence from randomly drawn paired sentences) or ``"mlm"`` (plain
        token-level MLM over randomly drawn sentences), so both are measured at the same shape.
    seed: draws of the sentences, triples and masks (default 0). max_label_tokens: as the data module.
    Feed it to ``UktpModule.losses`` (which also takes plain-MLM batches).
    """
    from kept.kg import open_store

    corpus = corpus if isinstance(corpus, LinkedCorpus) else LinkedCorpus(corpus)
    tokenizer = load_tokenizer(vocab)
    rng = np.random.default_rng(seed)
    generator = batch_generator(seed, 0, 0)
    if kind == "mlm":
        indices = rng.choice(len(corpus), batch_size, replace=len(corpus) < batch_size)
        collator = UnitMaskingCollator(tokenizer, max_length=seq_len, level="token", pad_to_multiple_of=seq_len)
        return collator([corpus[int(i)] for i in indices], generator=generator)
    if kind != "uktp":
        raise ValueError(f"kind must be 'uktp' or 'mlm', got {kind!r}")
    store = open_store(store) if isinstance(store, (str, Path)) else store
    pairing = load_pairing(corpus, store)
    paired = np.flatnonzero(pairing.counts > 0)
    if len(paired) == 0:
        raise ValueError(f"no sentence of {corpus.path} is paired with a triple of {store.path}")
    indices = rng.choice(paired, batch_size, replace=len(paired) < batch_size)
    entity_labels, relation_labels = build_label_tables(store, pairing, tokenizer, max_label_tokens)
    collator = UktpCollator(tokenizer, entity_labels, relation_labels, max_length=seq_len, pad_to_max_length=True)
    return collator([corpus[int(i)] for i in indices], choose_triples(pairing, indices, generator), generator)


def uktp_benchmark_batch(corpus: str | Path, store: str | Path, vocab: str | Path, batch_size: int = 32,
                         seq_len: int = 128, seed: int = 0) -> dict[str, torch.Tensor]:
    """A triple + sentence batch (:func:`benchmark_batch`) in the common benchmark signature of :mod:`kept.methods`."""
    return benchmark_batch(store, corpus, vocab, batch_size, seq_len, kind="uktp", seed=seed)
