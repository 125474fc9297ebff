"""ERNIE (Tsinghua) batches: masked tokens, entity alignments, and the dEA noise.

A batch is a masked-LM batch (:class:`~kept.masking.ernie.UnitMaskingCollator`: ``input_ids``,
``attention_mask``, ``token_type_ids``, ``labels`` [B, L]) plus the entities aligned to it, as a
compact sequence of K slots per example (K = most entities of a row in the batch, at least 1):

* ``entity_positions`` int64 [B, K]: token position of each slot -- the first wordpiece of the
  mention, counted after [CLS] (0 in empty slots);
* ``entity_ids`` int64 [B, K]: the model's input: row of the entity table = store id + 1, 0 = no
  entity (empty slot, or an alignment dropped by the dEA noise);
* ``entity_labels`` int64 [B, K]: dEA target, index into ``candidate_ids`` of the *original*
  entity of the slot, -100 in empty slots;
* ``candidate_ids`` int64 [C]: table rows of the batch's unique aligned entities (sorted).

The dEA noise (denoising entity auto-encoder), per aligned entity: 5 % replaced by a random
entity, 15 % alignment dropped, 80 % kept; every one of them is predicted among the candidates.
As in the reference code (thunlp/ERNIE ``run_pretrain.py``) the random entity is drawn from the
batch's candidates. All draws come from the generator of the batch, which the data module seeds
from ``(seed, epoch, batch index)`` (:class:`~kept.train.data.SeededCollate`): a resumed run sees
exactly the batches of an uninterrupted one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from kept.data.examples import RAGGED, LinkedCorpus, LinkedExample
from kept.data.tokenizer import load_tokenizer
from kept.masking.ernie import IGNORE_INDEX, UnitMaskingCollator
from kept.train.data import PretrainDataModule


def align_entities(examples: Sequence[LinkedExample], lengths: np.ndarray,
                   num_entities: int) -> tuple[np.ndarray, np.ndarray]:
    """``(entity_positions, entity_ids)``, int64 [B, K]: each example's entities on their first wordpiece.

    examples: the batch. lengths: int64 [B] text tokens kept per example after truncation
        (positions 1..length hold the text). num_entities: entities of the store (ids are checked).
    Entities whose first wordpiece was truncated away are dropped; two entities starting on the
    same wordpiece keep the first listed. Slots are in text order; ``entity_ids`` = store id + 1.
    """
    batch_size = len(examples)
    counts = np.asarray([len(ex.entity_ids) for ex in examples], dtype=np.int64)                  # [B]
    rows = np.repeat(np.arange(batch_size), counts)                                               # [E]
    if counts.sum():
        starts = np.concatenate([ex.entity_spans[:, 0] for ex in examples]).astype(np.int64) + 1  # after [CLS]
        store_ids = np.concatenate([ex.entity_ids for ex in examples]).astype(np.int64)
    else:
        starts = store_ids = np.zeros(0, dtype=np.int64)
    bad = np.flatnonzero((store_ids < 0) | (store_ids >= num_entities))
    if len(bad):
        i = bad[0]
        raise ValueError(f"example {rows[i]} of the batch ({examples[rows[i]].text[:60]!r}) links entity id "
                         f"{store_ids[i]}, outside the store's 0..{num_entities - 1}: the corpus was linked "
                         f"against another store")
    keep = starts <= lengths[rows]
    width = int(lengths.max(initial=0)) + 2
    _, first = np.unique(rows[keep] * width + starts[keep], return_index=True)  # sorted by (row, position)
    rows, starts, store_ids = rows[keep][first], starts[keep][first], store_ids[keep][first]
    per_row = np.bincount(rows, minlength=batch_size)                                             # [B]
    slots = max(int(per_row.max(initial=0)), 1)
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(per_row) - per_row, per_row)               # [E]
    positions = np.zeros((batch_size, slots), dtype=np.int64)
    table_ids = np.zeros((batch_size, slots), dtype=np.int64)
    positions[rows, slot] = starts
    table_ids[rows, slot] = store_ids + 1
    return positions, table_ids


def corrupt_alignments(entity_ids: torch.Tensor, generator: torch.Generator | None = None,
                       replace_prob: float = 0.05,
                       drop_prob: float = 0.15) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The dEA noise: ``(noisy entity_ids [B, K], entity_labels [B, K], candidate_ids [C])``.

    entity_ids: int64 [B, K] table rows (0 = no entity). generator: source of the draws (default:
    torch's global one). replace_prob: share of aligned entities replaced by a random candidate
    (0.05). drop_prob: share whose alignment is dropped, i.e. set to 0 (0.15).
    """
    present = entity_ids > 0                                                                      # [B, K]
    candidate_ids, inverse = torch.unique(entity_ids[present], return_inverse=True)              # [C], [P]
    labels = torch.full_like(entity_ids, IGNORE_INDEX)
    labels[present] = inverse
    draw = torch.rand(entity_ids.shape, generator=generator)                                      # [B, K]
    pick = torch.randint(max(len(candidate_ids), 1), entity_ids.shape, generator=generator)       # [B, K]
    replace = present & (draw < replace_prob)
    drop = present & (draw >= replace_prob) & (draw < replace_prob + drop_prob)
    noisy = entity_ids
    if len(candidate_ids):
        noisy = torch.where(replace, candidate_ids[pick], entity_ids)
    noisy = torch.where(drop, torch.zeros_like(noisy), noisy)
    return noisy, labels, candidate_ids


class ErnieTCollator:
    """Collate LinkedExamples into an ERNIE-T batch (the module docstring lists the keys).

    masking: the masked-LM collator (its ``max_length`` truncates, its level and probabilities mask).
    num_entities: entities of the KG store. replace_prob / drop_prob: the dEA noise (0.05 / 0.15).
    Called as ``collator(examples, generator, level)`` like ``UnitMaskingCollator``; without a
    generator it uses its own, seeded by the masking collator's seed.
    """

    def __init__(self, masking: UnitMaskingCollator, num_entities: int, replace_prob: float = 0.05,
                 drop_prob: float = 0.15):
        if replace_prob < 0 or drop_prob < 0 or replace_prob + drop_prob > 1:
            raise ValueError(f"replace_prob {replace_prob} and drop_prob {drop_prob} must be >= 0 and sum to <= 1")
        self.masking, self.num_entities = masking, num_entities
        self.replace_prob, self.drop_prob = replace_prob, drop_prob
        self._generator = torch.Generator().manual_seed(masking.seed)

    def __call__(self, examples: Sequence[LinkedExample], generator: torch.Generator | None = None,
                 level: str | None = None) -> dict[str, torch.Tensor]:
        generator = generator or self._generator
        batch = self.masking(examples, generator=generator, level=level)
        lengths = (batch["attention_mask"].sum(1) - 2).numpy()                                   # [B]
        positions, table_ids = align_entities(examples, lengths, self.num_entities)
        noisy, labels, candidates = corrupt_alignments(torch.from_numpy(table_ids), generator, self.replace_prob,
                                                       self.drop_prob)
        batch.update(entity_positions=torch.from_numpy(positions), entity_ids=noisy, entity_labels=labels,
                     candidate_ids=candidates)
        return batch


def resolve_store(corpus: str | Path, store: str | Path | None) -> Path:
    """The KG store of an ERNIE-T run: ``store`` when given, else the one the corpus was linked against."""
    if store is None:
        meta = Path(corpus) / "meta.json"
        if not meta.exists():
            raise FileNotFoundError(f"{corpus} is not a linked corpus (no meta.json)")
        store = json.loads(meta.read_text()).get("store")
        if not store:
            raise ValueError(f"{meta} records no KG store (the corpus has no entity links): pass the store "
                             f"explicitly (--data.store)")
    path = Path(store)
    if not (path / "meta.json").exists():
        raise FileNotFoundError(f"KG store {path} not found (no meta.json); build it with `kept kg build` or pass "
                                f"--data.store")
    return path


class ErnieTDataModule(PretrainDataModule):
    """ERNIE-T batches from a linked corpus (everything of :class:`~kept.train.data.PretrainDataModule`).

    corpus, vocab, masking, batch_size, max_length, mask_prob, num_workers, seed and val_fraction are
    as :class:`~kept.train.data.PretrainDataModule`'s (masking defaults to "token", as ERNIE).

    Args:
        store: the KG store the corpus was linked against (default None: the one recorded in the
            corpus's meta.json; ``--store`` sets it). The model takes its entity vectors from it.
        replace_prob: dEA noise: share of aligned entities replaced by another entity (default 0.05).
        drop_prob: dEA noise: share of aligned entities dropped (default 0.15).
        fact_mask_prob: fact masking over ``store`` (as :class:`~kept.train.data.PretrainDataModule`).
    """

    def __init__(self, corpus: str, vocab: str, store: str | None = None, masking: str = "token",
                 batch_size: int = 32, max_length: int = 128, mask_prob: float = 0.15, replace_prob: float = 0.05,
                 drop_prob: float = 0.15, num_workers: int = 0, seed: int = 0, val_fraction: float = 0.02,
                 fact_mask_prob: float = 0.0):
        store_path = resolve_store(corpus, store)
        super().__init__(corpus, vocab, masking=masking, batch_size=batch_size, max_length=max_length,
                         mask_prob=mask_prob, num_workers=num_workers, seed=seed, val_fraction=val_fraction,
                         fact_mask_prob=fact_mask_prob, fact_store=str(store_path))
        from kept.kg import open_store

        self.store_path = store_path
        self.num_entities = open_store(self.store_path).num_entities
        self.collator = ErnieTCollator(self.collator, self.num_entities, replace_prob, drop_prob)


def concat_examples(examples: Sequence[LinkedExample]) -> LinkedExample:
    """One example made of several, one after the other (spans shifted; used to fill long sequences)."""
    shift = np.cumsum([0] + [len(ex) for ex in examples[:-1]])
    fields = {}
    for name in RAGGED:
        parts = [getattr(ex, name) for ex in examples]
        if name in ("word_spans", "phrase_spans", "entity_spans"):
            parts = [p + s for p, s in zip(parts, shift)]
        elif name == "offsets":
            parts = [p if len(p) == len(ex) else np.zeros((len(ex), 2), np.int32) for p, ex in zip(parts, examples)]
        fields[name] = np.concatenate(parts)
    return LinkedExample(" ".join(ex.text for ex in examples), **fields)


def training_batch(corpus: str | Path | LinkedCorpus, vocab: str | Path, num_entities: int, batch_size: int,
                   seq_len: int, seed: int = 0, masking: str = "token", mask_prob: float = 0.15,
                   start: int = 0) -> dict[str, torch.Tensor]:
    """An ERNIE-T training batch of exactly ``[batch_size, seq_len]`` tokens from a real linked corpus.

    Consecutive examples from ``start`` are concatenated until each row has ``seq_len - 2`` text
    tokens (then truncated by the collator), masked and aligned as in training, seeded by ``seed``.
    The batch also feeds a plain masked-LM module (extra keys are ignored), so the two compare on
    the same tokens. num_entities: entities of the store the corpus was linked against.
    """
    corpus = corpus if isinstance(corpus, LinkedCorpus) else LinkedCorpus(corpus)
    need, i, rows = seq_len - 2, start, []
    while len(rows) < batch_size:
        parts, size = [], 0
        while size < need:
            if i >= len(corpus):
                raise ValueError(f"{corpus.path} has too few tokens for {batch_size} rows of {seq_len} from "
                                 f"example {start}")
            parts.append(corpus[i])
            size, i = size + len(parts[-1]), i + 1
        rows.append(concat_examples(parts))
    masking_collator = UnitMaskingCollator(load_tokenizer(vocab), max_length=seq_len, level=masking,
                                           mask_prob=mask_prob, seed=seed)
    return ErnieTCollator(masking_collator, num_entities)(rows, generator=torch.Generator().manual_seed(seed))


def benchmark_batch(corpus: str | Path, store: str | Path, vocab: str | Path, batch_size: int = 32,
                    seq_len: int = 128, seed: int = 0) -> dict[str, torch.Tensor]:
    """:func:`training_batch` in the common benchmark signature of :mod:`kept.methods`."""
    from kept.kg import open_store

    return training_batch(corpus, vocab, open_store(store).num_entities, batch_size, seq_len, seed=seed)
