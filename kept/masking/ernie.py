"""Baidu ERNIE 1.0 knowledge masking: batched unit masking and its collator.

Levels (``UnitMaskingCollator.level``), each a way of grouping tokens into units:

* ``"token"``  -- plain BERT MLM: every token is a unit (what the ``mlm`` baseline uses);
* ``"basic"``  -- ERNIE stage 1: basic units (a wordpiece, or a Chinese character) --
  the same grouping as ``"token"``, named as in the paper;
* ``"word"``   -- whole words (``LinkedExample.word_spans``);
* ``"phrase"`` -- ERNIE stage 2: ``phrase_spans``; tokens outside every phrase fall
  back to their word unit;
* ``"entity"`` -- ERNIE stage 3: ``entity_spans``; tokens outside every entity fall
  back to their word unit (as ERNIE, which masks words between the knowledge units).
  Tokens covered by no span at all (no word spans given) are basic units.

Masking (:func:`mask_units`), for a padded batch ``[B, L]`` and a unit id per token:

* each unit is selected with probability ``mask_prob`` (0.15): units, not tokens, so
  the expected fraction of *tokens* selected is also 0.15 at every level;
* one 80 / 10 / 10 draw per selected unit ([MASK] / random token / unchanged) applies
  to all its tokens. The ERNIE paper masks units as wholes, which kept follows; the
  PaddlePaddle reference code (``batching.mask``) draws per token inside a selected
  unit, available as ``replace_per_unit=False``. A random token is drawn per token from the vocabulary
  minus special and ``[unused]`` tokens;
* ``max_predictions`` caps the predicted tokens of a sequence: the selected units of
  a row are taken in random order while the running total fits; the unit that would
  pass the cap and all after it are dropped whole, never cut. The collator's default
  is ``ceil(1.5 * mask_prob * max_length)`` (29 for 128 tokens): it bounds how much of
  a sequence one draw can corrupt but rarely binds, so the realised rate stays 15 %;
* ``labels`` hold the original id where a token is predicted and -100 elsewhere;
  [CLS], [SEP], padding (and any special id inside a text) are never selected.

Masks are dynamic: drawn anew every time a batch is built. The collator is a pure
function of ``(examples, generator, level)``: in training the data module passes a
generator seeded from ``(seed, epoch, batch index)`` and the level of the batch's
global step (:class:`CurriculumSchedule`), so masks differ every epoch, the stage
switches exactly at its boundary step in any DataLoader worker, and a resumed run
sees the very batches an uninterrupted run would have. Called without them, it
uses its own ``level`` and a generator seeded by ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kept.data.examples import LinkedExample
from kept.masking.facts import FactPairs, fact_object_spans, mask_fact_objects

LEVELS = ("token", "basic", "word", "phrase", "entity")
#: span fields painted over the basic units at each level, lowest priority first
LEVEL_SPANS: dict[str, tuple[str, ...]] = {
    "token": (), "basic": (), "word": ("word_spans",),
    "phrase": ("word_spans", "phrase_spans"), "entity": ("word_spans", "entity_spans")}
IGNORE_INDEX = -100


@dataclass(frozen=True)
class MaskingVocab:
    """The ids masking needs.

    cls_id / sep_id / pad_id / mask_id: special token ids.
    replacement_ids: int64 [R] ids a "random token" is drawn from.
    """

    cls_id: int
    sep_id: int
    pad_id: int
    mask_id: int
    replacement_ids: torch.Tensor

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> MaskingVocab:
        """From a Hugging Face BERT tokenizer; random tokens exclude special and ``[unused*]`` tokens."""
        special = set(tokenizer.all_special_ids)
        vocab = tokenizer.get_vocab()
        ids = sorted(i for piece, i in vocab.items() if i not in special and not piece.startswith("[unused"))
        return cls(tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
                   tokenizer.mask_token_id, torch.tensor(ids, dtype=torch.long))

    @property
    def special_ids(self) -> torch.Tensor:
        return torch.tensor([self.cls_id, self.sep_id, self.pad_id, self.mask_id], dtype=torch.long)


def _cap_units(selected: torch.Tensor, unit_row: torch.Tensor, unit_size: torch.Tensor,
               priority: torch.Tensor, max_predictions: int, batch_size: int) -> torch.Tensor:
    """bool [U]: the selected units kept when each row may predict at most ``max_predictions`` tokens.

    selected: bool [U]; unit_row / unit_size: int64 [U]; priority: float [U] random
    order of the units within their row.
    """
    selected = selected & (unit_size <= max_predictions)
    order = torch.argsort(unit_row.double() * 2.0 + priority.double())         # [U] by row, random within
    size = (unit_size * selected)[order]                                        # [U] tokens each sorted unit adds
    running = torch.cumsum(size, 0)                                             # [U]
    row = unit_row[order]
    row_start = torch.full((batch_size,), int(running[-1]), dtype=running.dtype, device=running.device)
    row_start = row_start.scatter_reduce(0, row, running - size, reduce="amin")   # [B] total before each row
    fits = (running - row_start[row]) <= max_predictions                         # [U] running total in the row
    keep = torch.zeros_like(selected)
    keep[order] = selected[order] & fits
    return keep


def mask_units(input_ids: torch.Tensor, unit_ids: torch.Tensor, vocab: MaskingVocab, mask_prob: float = 0.15,
               max_predictions: int | None = None, generator: torch.Generator | None = None,
               mask_ratio: float = 0.8, random_ratio: float = 0.1,
               replace_per_unit: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask whole units of a batch; returns ``(masked input_ids [B, L], labels [B, L])``.

    input_ids: int64 [B, L] token ids with special tokens and padding.
    unit_ids: int64 [B, L] unit of each token: tokens of a row with the same id form
        one unit (ids need not be contiguous; equal ids in different rows are different
        units); -1 marks tokens that are never masked (special tokens, padding).
    vocab: the special ids and the ids random replacements come from.
    mask_prob: probability of selecting a unit (default 0.15).
    max_predictions: most predicted tokens per row, whole units only (default None: no cap).
    generator: source of randomness (default: torch's global generator).
    mask_ratio / random_ratio: shares of selected units replaced by [MASK] (0.8) and by
        random tokens (0.1); the rest are left unchanged but still predicted.
    replace_per_unit: one [MASK]/random/unchanged draw per unit (default True) or one per token.
    """
    batch_size, seq_len = input_ids.shape
    device = input_ids.device
    draw_device = generator.device if generator is not None else device
    maskable = unit_ids >= 0                                                     # [B, L]
    rows = torch.arange(batch_size, device=device).unsqueeze(1).expand(batch_size, seq_len)[maskable]  # [T]
    stride = int(unit_ids.max()) + 1 if bool(maskable.any()) else 1
    unit_keys, token_unit = torch.unique(rows * stride + unit_ids[maskable], return_inverse=True)    # [U], [T]
    num_units, num_tokens = unit_keys.numel(), token_unit.numel()
    unit_row = unit_keys // stride                                               # [U]
    unit_size = torch.bincount(token_unit, minlength=num_units)                  # [U]

    select_draw = torch.rand(num_units, generator=generator, device=draw_device).to(device)           # [U]
    action_draw = torch.rand(num_units if replace_per_unit else num_tokens, generator=generator,
                             device=draw_device).to(device)
    replacements = vocab.replacement_ids.to(device)
    random_tokens = replacements[torch.randint(len(replacements), (num_tokens,), generator=generator,
                                               device=draw_device).to(device)]                         # [T]
    selected = select_draw < mask_prob                                           # [U]
    if max_predictions is not None and num_units:
        selected = _cap_units(selected, unit_row, unit_size, select_draw, max_predictions, batch_size)

    token_selected = selected[token_unit]                                        # [T]
    token_action = action_draw[token_unit] if replace_per_unit else action_draw  # [T]
    originals = input_ids[maskable]                                              # [T]
    to_mask = token_selected & (token_action < mask_ratio)
    to_random = token_selected & (token_action >= mask_ratio) & (token_action < mask_ratio + random_ratio)
    replaced = torch.where(to_mask, torch.full_like(originals, vocab.mask_id), originals)
    replaced = torch.where(to_random, random_tokens, replaced)

    masked_ids = input_ids.clone()
    masked_ids[maskable] = replaced
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[maskable] = torch.where(token_selected, originals, torch.full_like(originals, IGNORE_INDEX))
    return masked_ids, labels


def paint_spans(unit_ids: np.ndarray, rows: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                first_id: int) -> None:
    """Give the tokens of span k (row ``rows[k]``, columns ``starts[k]:ends[k]``) unit id ``first_id + k``, in place."""
    lengths = ends - starts                                                      # [k]
    span = np.repeat(np.arange(len(starts)), lengths)                            # [S] span of each painted cell
    within = np.arange(len(span)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    unit_ids[rows[span], starts[span] + within] = first_id + span


@dataclass(frozen=True)
class CurriculumSchedule:
    """Which masking level is used at which global (optimizer) step.

    start: the level before the first boundary (default "basic").
    boundaries: ``(first step, level)`` pairs, e.g. ``((1000, "phrase"), (2000, "entity"))``.
    """

    start: str = "basic"
    boundaries: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        for _, level in self.boundaries:
            _level_index(level)
        _level_index(self.start)
        steps = [step for step, _ in self.boundaries]
        if steps != sorted(steps) or len(set(steps)) != len(steps) or any(step < 0 for step in steps):
            raise ValueError(f"boundaries must be increasing distinct non-negative steps, got {self.boundaries}")

    def level_at(self, step: int) -> str:
        """The level used at global step ``step``."""
        level = self.start
        for boundary, name in self.boundaries:
            if step >= boundary:
                level = name
        return level


def _level_index(level: str) -> int:
    if level not in LEVELS:
        raise ValueError(f"unknown masking level {level!r}; expected one of {', '.join(LEVELS)}")
    return LEVELS.index(level)


class UnitMaskingCollator:
    """Collate LinkedExamples into a masked batch: ``[CLS] text [SEP]``, padded, with MLM labels.

    vocab: a :class:`MaskingVocab` or a Hugging Face BERT tokenizer.
    max_length: longest sequence including [CLS] and [SEP] (default 128); longer texts are
        truncated and spans cut by the truncation are clipped to the kept tokens.
    level: one of :data:`LEVELS` (default "basic"): the level used when a call gives none.
    mask_prob: unit selection probability (default 0.15).
    max_predictions: most predicted tokens per sequence, whole units only
        (default None: ``ceil(1.5 * mask_prob * max_length)``; pass ``max_length`` for no cap).
    seed: seed of the generator used when a call gives none (default 0).
    replace_per_unit: one 80/10/10 draw per unit (default True) or per token.
    pad_to_multiple_of: pad the length to a multiple of this (default None: longest in batch).
    facts / fact_mask_prob: a :class:`~kept.masking.facts.FactPairs` of the corpus's KG store and
        the probability of masking, whole, each linked span that is the object of a fact whose
        subject is linked in the same sentence (default None / 0: no fact masking).

    Returns ``input_ids``, ``attention_mask``, ``token_type_ids`` and ``labels``, int64 [B, L].
    """

    def __init__(self, vocab: MaskingVocab | Any, max_length: int = 128, level: str = "basic",
                 mask_prob: float = 0.15, max_predictions: int | None = None, seed: int = 0,
                 replace_per_unit: bool = True, pad_to_multiple_of: int | None = None,
                 facts: FactPairs | None = None, fact_mask_prob: float = 0.0):
        if max_length < 3:
            raise ValueError("max_length must leave room for [CLS], [SEP] and a token")
        self.vocab = vocab if isinstance(vocab, MaskingVocab) else MaskingVocab.from_tokenizer(vocab)
        self.max_length, self.mask_prob, self.seed = max_length, mask_prob, seed
        self.max_predictions = (math.ceil(1.5 * mask_prob * max_length) if max_predictions is None
                                else max_predictions)
        self.replace_per_unit, self.pad_to_multiple_of = replace_per_unit, pad_to_multiple_of
        self.level = level
        self._generator = torch.Generator().manual_seed(seed)
        if not 0.0 <= fact_mask_prob <= 1.0:
            raise ValueError(f"fact_mask_prob must be in [0, 1], got {fact_mask_prob}")
        if fact_mask_prob > 0 and facts is None:
            raise ValueError("fact_mask_prob > 0 needs the KG store's facts (a FactPairs)")
        self.facts, self.fact_mask_prob = facts, fact_mask_prob

    def mask_facts(self, examples: Sequence[LinkedExample], input_ids: np.ndarray, lengths: np.ndarray,
                   masked: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Fact masking (:mod:`kept.masking.facts`) on top of a masked batch, in place; no-op when off."""
        if self.facts is not None and self.fact_mask_prob > 0:
            mask_fact_objects(masked, labels, torch.from_numpy(input_ids),
                              fact_object_spans(examples, lengths, self.facts), self.fact_mask_prob,
                              self.vocab.mask_id, generator or self._generator)

    @property
    def level(self) -> str:
        return self._level

    @level.setter
    def level(self, level: str) -> None:
        _level_index(level)
        self._level = level

    def pad(self, examples: Sequence[LinkedExample]) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids int64 [B, L], lengths int64 [B])``: [CLS] ids [SEP] then padding; lengths count text tokens."""
        lengths = np.asarray([min(len(ex), self.max_length - 2) for ex in examples], dtype=np.int64)   # [B]
        width = int(lengths.max(initial=0)) + 2
        if self.pad_to_multiple_of:
            width = min(-(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of, self.max_length)
        input_ids = np.full((len(examples), width), self.vocab.pad_id, dtype=np.int64)                 # [B, L]
        flat = np.concatenate([np.asarray(ex.input_ids[:n], dtype=np.int64) for ex, n in zip(examples, lengths)])
        rows = np.repeat(np.arange(len(examples)), lengths)
        cols = 1 + np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        input_ids[rows, cols] = flat
        input_ids[:, 0] = self.vocab.cls_id
        input_ids[np.arange(len(examples)), lengths + 1] = self.vocab.sep_id
        return input_ids, lengths

    def unit_ids(self, examples: Sequence[LinkedExample], input_ids: np.ndarray, lengths: np.ndarray,
                 level: str | None = None) -> np.ndarray:
        """int64 [B, L]: the unit of each token at ``level`` (default: the current one), -1 where never masked."""
        batch_size, width = input_ids.shape
        positions = np.arange(width)
        text = (positions >= 1) & (positions <= lengths[:, None])                               # [B, L]
        unit_ids = np.where(text, np.arange(batch_size)[:, None] * width + positions, -1)      # basic units
        next_id = batch_size * width
        for name in LEVEL_SPANS[level or self.level]:
            spans = [np.asarray(getattr(ex, name), dtype=np.int64).reshape(-1, 2) for ex in examples]
            rows = np.repeat(np.arange(batch_size), [len(s) for s in spans])                     # [K]
            spans = np.concatenate(spans) + 1                                                    # [K, 2] after [CLS]
            ends = np.minimum(spans[:, 1], lengths[rows] + 1)                                    # clip to the kept text
            keep = spans[:, 0] < ends
            paint_spans(unit_ids, rows[keep], spans[keep, 0], ends[keep], next_id)
            next_id += len(spans)
        special = np.isin(input_ids, self.vocab.special_ids.numpy())
        return np.where(text & ~special, unit_ids, -1)

    def __call__(self, examples: Sequence[LinkedExample], generator: torch.Generator | None = None,
                 level: str | None = None) -> dict[str, torch.Tensor]:
        """Mask a batch; ``generator`` and ``level`` default to the collator's own."""
        if len(examples) == 0:
            raise ValueError("cannot collate an empty batch")
        input_ids, lengths = self.pad(examples)
        unit_ids = self.unit_ids(examples, input_ids, lengths, level)
        input_ids_t = torch.from_numpy(input_ids)                                              # [B, L]
        masked, labels = mask_units(input_ids_t, torch.from_numpy(unit_ids), self.vocab, self.mask_prob,
                                    self.max_predictions, generator or self._generator,
                                    replace_per_unit=self.replace_per_unit)
        self.mask_facts(examples, input_ids, lengths, masked, labels, generator)
        attention_mask = torch.arange(input_ids.shape[1]) < torch.from_numpy(lengths + 2)[:, None]   # [B, L]
        return {"input_ids": masked, "attention_mask": attention_mask.long(),
                "token_type_ids": torch.zeros_like(input_ids_t), "labels": labels}
