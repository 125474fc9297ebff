"""Fact masking: mask, whole, the object of a KG fact whose subject is in the same sentence.

Token masking (15 % of wordpieces) almost never hides a fact's whole object, so a model can
fill each object piece from the other pieces and never has to recall the fact. Salient-span
masking (REALM, Guu et al. 2020) masks named entities instead; kept's variant uses the KG to
pick the spans that carry facts: a linked entity span is a *fact object* when the store holds
a triple ``(s, r, o)`` with ``o`` its entity and ``s`` another entity linked in the sentence.
Each fact-object span is masked with probability ``fact_mask_prob``, all its tokens
``[MASK]`` (never a random or unchanged token: the point is to hide it), on top of the
ordinary masking. The study applies the same fact masking to every method, so what differs
between methods is what they read, not what they are asked to predict.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from kept.data.examples import LinkedExample


class FactPairs:
    """The (subject, object) entity pairs of a store's triples, as sorted int64 keys.

    store: a KG store directory (or an opened store). ``contains(subjects, objects)`` is a
    vectorised membership test (binary search over the sorted keys).
    """

    def __init__(self, store: str | Path | object):
        from kept.kg.store import open_store

        opened = open_store(store) if isinstance(store, (str, Path)) else store
        triples = np.asarray(opened.triples, dtype=np.int64)                     # [T, 3]
        self.num_entities = int(opened.num_entities)
        self.keys = np.unique(triples[:, 0] * self.num_entities + triples[:, 2])  # [P] sorted

    def contains(self, subjects: np.ndarray, objects: np.ndarray) -> np.ndarray:
        """bool [K]: is ``(subjects[k], objects[k])`` a pair of some triple?"""
        keys = np.asarray(subjects, np.int64) * self.num_entities + np.asarray(objects, np.int64)
        at = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        return (self.keys[at] == keys) if len(self.keys) else np.zeros(len(keys), bool)


def fact_object_spans(examples: Sequence[LinkedExample], lengths: np.ndarray,
                      pairs: FactPairs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, starts, ends)`` int64 [K]: the fact-object spans of a padded batch.

    Positions count ``[CLS]`` as 0 (the collator's layout); spans past the kept text
    (``lengths[row]`` text tokens) are dropped. A span is a fact object when its entity
    is the object of a triple whose subject is another span's entity in the same example.
    """
    spans = [np.asarray(ex.entity_spans, np.int64).reshape(-1, 2) for ex in examples]
    ids = [np.asarray(ex.entity_ids, np.int64).reshape(-1) for ex in examples]
    counts = np.asarray([len(i) for i in ids], np.int64)                          # [B]
    if counts.sum() == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    span_row = np.repeat(np.arange(len(examples)), counts)                        # [S]
    all_spans, all_ids = np.concatenate(spans), np.concatenate(ids)               # [S, 2], [S]
    # every ordered (subject span, object span) pair of the same row: offsets within the row
    first = np.cumsum(counts) - counts                                            # [B]
    pair_count = counts[span_row]                                                 # [S] candidate subjects per span
    obj = np.repeat(np.arange(len(all_ids)), pair_count)                          # [Q] object span
    sub = first[span_row[obj]] + (np.arange(len(obj)) - np.repeat(np.cumsum(pair_count) - pair_count, pair_count))
    keep = (sub != obj) & (all_ids[sub] != all_ids[obj])
    obj, sub = obj[keep], sub[keep]
    hit = np.zeros(len(all_ids), bool)
    hit[obj[pairs.contains(all_ids[sub], all_ids[obj])]] = True
    rows, starts, ends = span_row[hit], all_spans[hit, 0] + 1, all_spans[hit, 1] + 1
    fits = ends <= np.asarray(lengths, np.int64)[rows] + 1
    return rows[fits], starts[fits], ends[fits]


def mask_fact_objects(masked: torch.Tensor, labels: torch.Tensor, input_ids: torch.Tensor,
                      spans: tuple[np.ndarray, np.ndarray, np.ndarray], prob: float, mask_id: int,
                      generator: torch.Generator | None = None) -> None:
    """Mask each span of ``spans`` whole with probability ``prob``, in place.

    masked / labels / input_ids: int64 [B, L] (the masked ids, the labels with -100, the
    original ids). A masked span's tokens all become ``mask_id`` and are predicted.
    """
    rows, starts, ends = spans
    if prob <= 0 or len(rows) == 0:
        return
    chosen = (torch.rand(len(rows), generator=generator) < prob).numpy()           # [K]
    rows, starts, ends = rows[chosen], starts[chosen], ends[chosen]
    lengths = ends - starts
    token_rows = torch.from_numpy(np.repeat(rows, lengths))                        # [T]
    token_cols = torch.from_numpy(np.repeat(starts, lengths) + np.arange(lengths.sum())
                                  - np.repeat(np.cumsum(lengths) - lengths, lengths))
    labels[token_rows, token_cols] = input_ids[token_rows, token_cols]
    masked[token_rows, token_cols] = mask_id
