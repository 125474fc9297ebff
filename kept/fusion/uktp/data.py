"""ERNIE 3.0 universal knowledge-text prediction (UKTP): the data side.

* :func:`pair_triples` / :func:`load_pairing`: for every example of a linked corpus,
  the store triples ``(h, r, t)`` whose head and tail are two different entities
  linked in that sentence. Vectorised: the distinct linked entities of each sentence
  are crossed into ordered ``(h, t)`` candidates, which are looked up in the store's
  triples sorted by ``h * num_entities + t`` with ``np.searchsorted``. The cost is
  the sum over sentences of (linked entities)^2, independent of entity degrees.
  :func:`load_pairing` caches the result next to the corpus.
* :class:`LabelTable`: entity and relation labels tokenised once into flat arrays.
* :class:`UktpCollator`: ``[CLS] head relation tail [SEP] sentence [SEP]`` with
  token types 0 / 1 and the UKTP masking rule (see the class docstring).

How batches of an epoch mix UKTP and plain-MLM batches is in :mod:`kept.fusion.uktp.train`.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kept.data.examples import LinkedCorpus, LinkedExample
from kept.masking.ernie import IGNORE_INDEX, MaskingVocab

PAIRING_VERSION = 1
#: element code of each token in the UKTP layout; -1 marks [CLS], [SEP] and padding
ELEMENTS = {"head": 0, "relation": 1, "tail": 2, "sentence": 3}


# ---- pairing -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TriplePairing:
    """The store triples each corpus example can be paired with, in CSR form.

    indptr: int64 [N + 1]; the pairs of example i are entries ``indptr[i]:indptr[i + 1]``.
    triple_rows: int64 [P] row of each paired triple in ``store.triples`` (ascending per example).
    triples: int64 [P, 3] the paired triples themselves (head, relation, tail).
    """

    indptr: np.ndarray
    triple_rows: np.ndarray
    triples: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """int64 [N]: number of triples each example can be paired with."""
        return np.diff(self.indptr)


def pair_triples(entity_ids: np.ndarray, entity_indptr: np.ndarray, triples: np.ndarray, num_entities: int,
                 chunk_examples: int = 65536) -> TriplePairing:
    """Pair each example with the triples whose head and tail (distinct) are both linked in it.

    entity_ids: int [E] linked entity ids of all examples, concatenated.
    entity_indptr: int [N + 1] CSR pointers of ``entity_ids`` per example.
    triples: int [T, 3] the store's (head, relation, tail) rows.
    num_entities: the store's entity count (ids must lie in 0..num_entities-1).
    chunk_examples: examples processed per vectorised chunk (default 65536), bounding memory.
    """
    entity_ids = np.asarray(entity_ids, dtype=np.int64)
    entity_indptr = np.asarray(entity_indptr, dtype=np.int64)
    triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
    if len(entity_ids) and (entity_ids.min() < 0 or entity_ids.max() >= num_entities):
        raise ValueError(f"linked entity ids range over {entity_ids.min()}..{entity_ids.max()} but the store has "
                         f"{num_entities} entities: was the corpus linked against this store?")
    ht_keys = triples[:, 0] * num_entities + triples[:, 2]                       # [T]
    order = np.argsort(ht_keys, kind="stable")                                   # [T] rows by (h, t), then row
    sorted_keys = ht_keys[order]
    num_examples = len(entity_indptr) - 1
    found_examples, found_rows = [], []
    for a in range(0, num_examples, chunk_examples):
        b = min(a + chunk_examples, num_examples)
        ents = entity_ids[entity_indptr[a] : entity_indptr[b]]                       # [e]
        example = np.repeat(np.arange(a, b), np.diff(entity_indptr[a : b + 1]))     # [e]
        unique = np.unique((example - a) * num_entities + ents)                      # [u] distinct (example, entity)
        u_example, u_entity = unique // num_entities + a, unique % num_entities
        per_example = np.bincount(u_example - a, minlength=b - a)                    # [b - a]
        group_start = np.cumsum(per_example) - per_example                           # [b - a]
        # every ordered pair (i, j) of distinct entities of one example
        count = per_example[u_example - a]                                           # [u]
        first = np.repeat(np.arange(len(unique)), count)                             # [c]
        within = np.arange(len(first)) - np.repeat(np.cumsum(count) - count, count)
        second = group_start[u_example[first] - a] + within                          # [c]
        distinct = first != second
        first, second = first[distinct], second[distinct]
        candidates = u_entity[first] * num_entities + u_entity[second]               # [c] (h, t) keys
        lo = np.searchsorted(sorted_keys, candidates, "left")
        hits = np.searchsorted(sorted_keys, candidates, "right") - lo                # [c] relations per (h, t)
        which = np.repeat(np.arange(len(candidates)), hits)                          # [p]
        offset = np.arange(len(which)) - np.repeat(np.cumsum(hits) - hits, hits)
        found_examples.append(u_example[first[which]])
        found_rows.append(order[lo[which] + offset])
    examples = np.concatenate(found_examples) if found_examples else np.zeros(0, np.int64)
    rows = np.concatenate(found_rows) if found_rows else np.zeros(0, np.int64)
    by_example = np.lexsort((rows, examples))
    examples, rows = examples[by_example], rows[by_example].astype(np.int64)
    indptr = np.zeros(num_examples + 1, dtype=np.int64)
    np.cumsum(np.bincount(examples, minlength=num_examples), out=indptr[1:])
    return TriplePairing(indptr, rows, triples[rows])


def load_pairing(corpus: LinkedCorpus, store: Any, cache: bool = True) -> TriplePairing:
    """:func:`pair_triples` for a corpus and a KG store, cached in the corpus directory.

    corpus: an opened :class:`LinkedCorpus`. store: an opened KG store (``kept.kg.open_store``).
    cache: read/write ``uktp_pairs-<key>.npz`` in the corpus directory (default True); the key
        hashes both ``meta.json`` files, so rebuilding either invalidates it. A read-only
        corpus directory is not an error: the pairing is then only kept in memory.
    """
    key = hashlib.sha1((corpus.path / "meta.json").read_bytes() + (Path(store.path) / "meta.json").read_bytes()
                       + str(PAIRING_VERSION).encode()).hexdigest()[:16]
    path = corpus.path / f"uktp_pairs-{key}.npz"
    if cache and path.exists():
        with np.load(path) as saved:
            pairing = TriplePairing(saved["indptr"], saved["triple_rows"], saved["triples"])
        if len(pairing.indptr) == len(corpus) + 1:
            return pairing
    try:
        pairing = pair_triples(corpus.arrays["entity_ids"], corpus.indptr["entities"], store.triples,
                               store.num_entities)
    except ValueError as exc:
        raise ValueError(f"{corpus.path} with store {store.path}: {exc}") from None
    if cache:
        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npz")
        try:
            np.savez(tmp, indptr=pairing.indptr, triple_rows=pairing.triple_rows, triples=pairing.triples)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            warnings.warn(f"could not cache the UKTP pairing at {path} ({exc}); it is kept in memory", stacklevel=2)
    return pairing


# ---- labels --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelTable:
    """Wordpiece ids of names (entity or relation labels), tokenised once.

    keys: int64 [n] the ids that have a name here, ascending.
    indptr: int64 [n + 1]; token_ids: int64 [total]: the pieces of ``keys[k]`` are
        ``token_ids[indptr[k]:indptr[k + 1]]`` (never empty: an empty name is ``[UNK]``).
    """

    keys: np.ndarray
    indptr: np.ndarray
    token_ids: np.ndarray

    @classmethod
    def build(cls, ids: np.ndarray, names: Sequence[str], tokenizer: Any, max_tokens: int) -> LabelTable:
        """Tokenise ``names[k]`` (the name of ``ids[k]``) keeping at most ``max_tokens`` pieces each."""
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(ids)
        pieces = tokenizer(list(names), add_special_tokens=False)["input_ids"] if len(names) else []
        pieces = [(p or [tokenizer.unk_token_id])[:max_tokens] for p in pieces]
        lengths = np.asarray([len(pieces[k]) for k in order], dtype=np.int64)
        indptr = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        flat = [t for k in order for t in pieces[k]]
        return cls(ids[order], indptr, np.asarray(flat, dtype=np.int64))

    def spans(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, lengths)`` int64 [m] of the names of ``ids`` in ``token_ids``; KeyError if one is absent."""
        ids = np.asarray(ids, dtype=np.int64)
        k = np.searchsorted(self.keys, ids).clip(max=max(len(self.keys) - 1, 0))
        if len(ids) and (len(self.keys) == 0 or np.any(self.keys[k] != ids)):
            missing = ids[(self.keys[k] != ids) if len(self.keys) else slice(None)]
            raise KeyError(f"no label tokenised for id {int(missing[0])}")
        return self.indptr[k], self.indptr[k + 1] - self.indptr[k]


def entity_names(store: Any, entity_ids: np.ndarray) -> list[str]:
    """Label of each entity (its key when the source gave no label), in one batched SQLite pass."""
    names: dict[int, str] = {}
    ids = [int(i) for i in entity_ids]
    for a in range(0, len(ids), 900):  # SQLite's default limit of bound parameters is 999
        chunk = ids[a : a + 900]
        rows = store.db.execute(f"SELECT id, key, label FROM entities WHERE id IN ({','.join('?' * len(chunk))})",
                                chunk)
        names.update((i, label if label else key) for i, key, label in rows)
    return [names[i] for i in ids]


def build_label_tables(store: Any, pairing: TriplePairing, tokenizer: Any,
                       max_tokens: int) -> tuple[LabelTable, LabelTable]:
    """(entity labels of every head and tail in ``pairing``, labels of every relation), tokenised."""
    entities = np.unique(pairing.triples[:, [0, 2]])
    relations = np.arange(store.num_relations)
    return (LabelTable.build(entities, entity_names(store, entities), tokenizer, max_tokens),
            LabelTable.build(relations, [store.relation_label(r) for r in relations], tokenizer, max_tokens))


def choose_triples(pairing: TriplePairing, example_indices: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """int64 [B, 3]: one triple per example, uniform among its pairs (each example needs at least one)."""
    example_indices = np.asarray(example_indices, dtype=np.int64)
    start, count = pairing.indptr[example_indices], pairing.counts[example_indices]        # [B]
    if np.any(count == 0):
        raise ValueError(f"example {int(example_indices[count == 0][0])} has no triple to pair with")
    draw = torch.rand(len(example_indices), generator=generator, dtype=torch.float64).numpy()
    return pairing.triples[start + np.minimum((draw * count).astype(np.int64), count - 1)]


# ---- layout and masking --------------------------------------------------------------------------
def _scatter_ragged(out: np.ndarray, col_start: np.ndarray, source: np.ndarray, src_start: np.ndarray,
                    lengths: np.ndarray) -> None:
    """``out[b, col_start[b] + j] = source[src_start[b] + j]`` for ``j < lengths[b]``, in place."""
    rows = np.repeat(np.arange(len(lengths)), lengths)                          # [S]
    within = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, col_start[rows] + within] = source[src_start[rows] + within]


class UktpCollator:
    """Triple + sentence batches: ``[CLS] head relation tail [SEP] sentence [SEP]``, masked.

    Token types are 0 for ``[CLS]``, the triple and the first ``[SEP]``, 1 for the
    sentence and the last ``[SEP]``. Labels are truncated to the tables' ``max_tokens``;
    the sentence keeps what fits in ``max_length`` after the triple.

    Masking rule, per sequence:

    * triple: one element among ``triple_elements`` is drawn uniformly and all its
      tokens are predicted, with one 80/10/10 draw for the whole element ([MASK] /
      random tokens / unchanged);
    * sentence: each sentence token is selected with probability ``mask_prob`` and,
      independently per token, 80 % [MASK] / 10 % random / 10 % unchanged;
    * [CLS], [SEP], padding and special ids inside a text are never predicted. Random
      tokens come from the vocabulary minus special and ``[unused]`` tokens.

    vocab: a :class:`MaskingVocab` or a BERT tokenizer. entity_labels / relation_labels:
    :class:`LabelTable` s. max_length: tokens per sequence (default 128). mask_prob: sentence
    token selection probability (default 0.15). triple_elements: elements the masked one is
    drawn from (default ``("relation",)``, the ERNIE 3.0 paper's choice: head and tail are in the
    sentence, so masking them asks the model to copy; ``("head", "relation", "tail")`` draws uniformly).
    pad_to_max_length: pad every batch to ``max_length`` (default False: longest sequence).
    """

    def __init__(self, vocab: MaskingVocab | Any, entity_labels: LabelTable, relation_labels: LabelTable,
                 max_length: int = 128, mask_prob: float = 0.15,
                 triple_elements: Sequence[str] = ("relation",), pad_to_max_length: bool = False):
        self.vocab = vocab if isinstance(vocab, MaskingVocab) else MaskingVocab.from_tokenizer(vocab)
        self.entity_labels, self.relation_labels = entity_labels, relation_labels
        bad = [e for e in triple_elements if e not in ("head", "relation", "tail")]
        if bad or not triple_elements:
            raise ValueError(f"triple_elements must be a non-empty subset of head, relation, tail; "
                             f"got {triple_elements}")
        longest_entity, longest_relation = (int(np.diff(t.indptr).max(initial=1)) for t in (entity_labels,
                                                                                            relation_labels))
        longest_triple = 2 * longest_entity + longest_relation
        if max_length < longest_triple + 4:
            raise ValueError(f"max_length {max_length} leaves no room for a sentence after a triple of up to "
                             f"{longest_triple} tokens: raise max_length or lower max_label_tokens")
        self.max_length, self.mask_prob, self.pad_to_max_length = max_length, mask_prob, pad_to_max_length
        self.triple_elements = torch.tensor([ELEMENTS[e] for e in triple_elements], dtype=torch.long)

    def layout(self, examples: Sequence[LinkedExample], triples: np.ndarray) -> dict[str, np.ndarray]:
        """The unmasked batch: ``input_ids``, ``token_type_ids``, ``attention_mask`` and ``element``, int64 [B, L].

        examples: the sentences. triples: int [B, 3] the (head, relation, tail) paired with each.
        element: the :data:`ELEMENTS` code of each token, -1 on [CLS], [SEP] and padding.
        """
        triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
        batch_size = len(examples)
        head_start, head_len = self.entity_labels.spans(triples[:, 0])                         # [B]
        rel_start, rel_len = self.relation_labels.spans(triples[:, 1])
        tail_start, tail_len = self.entity_labels.spans(triples[:, 2])
        triple_len = head_len + rel_len + tail_len
        sent_len = np.minimum([len(ex) for ex in examples], self.max_length - 3 - triple_len)   # [B]
        total = triple_len + sent_len + 3
        width = self.max_length if self.pad_to_max_length else int(total.max())
        # boundaries of the segments [CLS] | head | relation | tail | [SEP] | sentence | [SEP] | padding
        bounds = np.cumsum(np.stack([np.ones_like(head_len), head_len, rel_len, tail_len, np.ones_like(head_len),
                                     sent_len, np.ones_like(head_len)], 1), 1)                   # [B, 7]
        segment = (np.arange(width)[None, :, None] >= bounds[:, None, :]).sum(-1)              # [B, L] 0..7
        element = np.array([-1, 0, 1, 2, -1, 3, -1, -1])[segment]                               # [B, L]
        input_ids = np.full((batch_size, width), self.vocab.pad_id, dtype=np.int64)
        input_ids[:, 0] = self.vocab.cls_id
        input_ids[np.arange(batch_size), bounds[:, 3]] = self.vocab.sep_id
        input_ids[np.arange(batch_size), bounds[:, 5]] = self.vocab.sep_id
        _scatter_ragged(input_ids, bounds[:, 0], self.entity_labels.token_ids, head_start, head_len)
        _scatter_ragged(input_ids, bounds[:, 1], self.relation_labels.token_ids, rel_start, rel_len)
        _scatter_ragged(input_ids, bounds[:, 2], self.entity_labels.token_ids, tail_start, tail_len)
        sentences = np.concatenate([np.asarray(ex.input_ids[:n], dtype=np.int64) for ex, n in zip(examples, sent_len)])
        _scatter_ragged(input_ids, bounds[:, 4], sentences, np.cumsum(sent_len) - sent_len, sent_len)
        return {"input_ids": input_ids, "element": element,
                "token_type_ids": ((segment == 5) | (segment == 6)).astype(np.int64),  # sentence + its [SEP]
                "attention_mask": (segment < 7).astype(np.int64)}

    def mask(self, input_ids: torch.Tensor, element: torch.Tensor,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(masked input_ids [B, L], labels [B, L])`` by the class's rule; labels are -100 where not predicted."""
        batch_size, width = input_ids.shape
        maskable = ~torch.isin(input_ids, self.vocab.special_ids)                              # [B, L]
        chosen = self.triple_elements[torch.randint(len(self.triple_elements), (batch_size,), generator=generator)]
        sentence = element == ELEMENTS["sentence"]
        sentence_draw = torch.rand(batch_size, width, generator=generator)                     # [B, L]
        selected = maskable & ((element == chosen[:, None]) | (sentence & (sentence_draw < self.mask_prob)))
        # one action draw per sentence token, one per masked triple element
        action = torch.where(sentence, torch.rand(batch_size, width, generator=generator),
                             torch.rand(batch_size, 1, generator=generator))                   # [B, L]
        replacements = self.vocab.replacement_ids
        random_tokens = replacements[torch.randint(len(replacements), (batch_size, width), generator=generator)]
        masked = torch.where(selected & (action < 0.8), torch.full_like(input_ids, self.vocab.mask_id), input_ids)
        masked = torch.where(selected & (action >= 0.8) & (action < 0.9), random_tokens, masked)
        labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
        return masked, labels

    def __call__(self, examples: Sequence[LinkedExample], triples: np.ndarray,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """A masked batch: input_ids, attention_mask, token_type_ids, labels (int64 [B, L]) and
        triple_tokens (bool [B, L], True on head/relation/tail tokens)."""
        if len(examples) == 0:
            raise ValueError("cannot collate an empty batch")
        batch = {name: torch.from_numpy(value) for name, value in self.layout(examples, triples).items()}
        element = batch.pop("element")                                                         # [B, L]
        masked, labels = self.mask(batch["input_ids"], element, generator)
        return {**batch, "input_ids": masked, "labels": labels,
                "triple_tokens": (element >= 0) & (element < ELEMENTS["sentence"])}
