"""Entity context bags: the hashed content tokens the linker compares with a mention's context.

The bag of an entity is the set of content tokens (:mod:`kept.kg.linking.textnorm`) of

* its label, aliases and description,
* the labels of up to ``max_neighbours`` neighbours (out-edges first, then in-edges, in
  store order), and
* the labels of the relations of those edges.

Bags are built once, with NumPy over the store's arrays, for the entities that need one
(candidates of ambiguous names), and stored as a CSR pair saved with the alias index::

    bag_indptr int64  [num_entities + 1]   tokens of e are bag_tokens[bag_indptr[e]:bag_indptr[e + 1]]
    bag_tokens uint32 [T]                  sorted and unique within each entity
"""

from __future__ import annotations

import numpy as np

from kept.kg.linking.textnorm import content_ids
from kept.kg.store import KGStore


def gather_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int64 [sum(lengths)]: ``concat(arange(s, s + l) for s, l in zip(starts, lengths))``, vectorised."""
    starts, lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    return np.repeat(starts - (ends - lengths), lengths) + np.arange(total, dtype=np.int64)


def sorted_unique(x: np.ndarray) -> np.ndarray:
    """``np.unique(x)`` by sorting (NumPy 2's hash-based ``unique`` is much slower on large int arrays)."""
    x = np.sort(x)
    return x[np.append(True, x[1:] != x[:-1])] if len(x) else x


def unique_inverse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(x, return_inverse=True)`` by sorting: (distinct values [U], index of each x in them [n])."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    first = np.append(True, xs[1:] != xs[:-1]) if len(xs) else np.zeros(0, dtype=bool)
    inverse = np.empty(len(x), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return xs[first], inverse


def _csr(owner: np.ndarray, values: np.ndarray, size: int, unique: bool) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr int64 [size + 1], values) of ``(owner, value)`` pairs, sorted (and deduplicated)."""
    key = (owner.astype(np.uint64) << np.uint64(32)) | values.astype(np.uint64)
    key = sorted_unique(key) if unique else np.sort(key, kind="stable")
    indptr = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.bincount((key >> np.uint64(32)).astype(np.int64), minlength=size), out=indptr[1:])
    return indptr, (key & np.uint64(0xFFFFFFFF)).astype(np.uint32)


class _Pairs:
    """(owner, token id) pairs of many short texts, tokenised in batches of ``batch`` texts."""

    def __init__(self, batch: int = 100_000) -> None:
        self.batch = batch
        self.texts: list[str] = []
        self.text_owners: list[int] = []
        self.owners: list[np.ndarray] = []
        self.tokens: list[np.ndarray] = []

    def add_text(self, owner: int, text: str | None) -> None:
        if text:
            self.texts.append(text)
            self.text_owners.append(owner)
            if len(self.texts) >= self.batch:
                self._flush()

    def _flush(self) -> None:
        if not self.texts:
            return
        lengths = np.fromiter(map(len, self.texts), dtype=np.int64, count=len(self.texts))
        text_start = np.concatenate([[0], np.cumsum(lengths[:-1] + 1)])          # joined by one separator
        ids, starts = content_ids("\x00".join(self.texts))
        which = np.searchsorted(text_start, starts, side="right") - 1
        self.owners.append(np.asarray(self.text_owners, dtype=np.int64)[which])
        self.tokens.append(ids)
        self.texts, self.text_owners = [], []

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        self._flush()
        if not self.owners:
            return np.zeros(0, np.int64), np.zeros(0, np.uint32)
        return np.concatenate(self.owners), np.concatenate(self.tokens)


def build_bags(store: KGStore, need: np.ndarray, max_neighbours: int = 64,
               chunk_triples: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """Bags of the entities where ``need`` (bool [num_entities]) is True; empty for the others.

    store: the KG store.
    need: bool [num_entities], which entities get a bag.
    max_neighbours: neighbours whose labels enter a bag (default 64).
    chunk_triples: triples scanned at once (bounds memory; default 4M).
    Returns (bag_indptr int64 [num_entities + 1], bag_tokens uint32 [T]).
    """
    n = store.num_entities
    labels, own = _Pairs(), _Pairs()
    wanted = need.tolist()
    for eid, label, description in store.db.execute("SELECT id, label, description FROM entities"):
        labels.add_text(eid, label)
        if wanted[eid]:
            own.add_text(eid, label)
            own.add_text(eid, description)
    for eid, alias in store.db.execute("SELECT entity_id, alias FROM aliases"):
        if wanted[eid]:
            own.add_text(eid, alias)
    label_ptr, label_tok = _csr(*labels.arrays(), n, unique=True)
    del labels
    rel_pairs = _Pairs()
    for r in range(store.num_relations):
        rel_pairs.add_text(r, store.relation_label(r))
    rel_ptr, rel_tok = _csr(*rel_pairs.arrays(), store.num_relations, unique=True)

    # edges touching a needed entity: (entity, neighbour, relation, in-edge?) -- out-edges sort first
    parts = []
    for a in range(0, store.num_triples, chunk_triples):
        t = np.asarray(store.triples[a : a + chunk_triples], dtype=np.int64)          # [c, 3]
        for side, other, inward in ((0, 2, 0), (2, 0, 1)):
            rows = t[need[t[:, side]]]
            parts.append(np.stack([rows[:, side], rows[:, other], rows[:, 1],
                                   np.full(len(rows), inward, np.int64)], axis=1))
    edges = np.concatenate(parts) if parts else np.zeros((0, 4), np.int64)
    edges = edges[np.lexsort((edges[:, 3], edges[:, 0]))]   # by entity, out-edges first, store order kept
    if len(edges):
        group_start = np.flatnonzero(np.append(True, edges[1:, 0] != edges[:-1, 0]))
        rank = np.arange(len(edges)) - np.repeat(group_start, np.diff(np.append(group_start, len(edges))))
        edges = edges[rank < max_neighbours]
    ent, nbr, rel = edges[:, 0], edges[:, 1], edges[:, 2]

    own_e, own_t = own.arrays()
    lens = label_ptr[nbr + 1] - label_ptr[nbr]
    nbr_e, nbr_t = np.repeat(ent, lens), label_tok[gather_ranges(label_ptr[nbr], lens)]
    lens = rel_ptr[rel + 1] - rel_ptr[rel]
    rel_e, rel_t = np.repeat(ent, lens), rel_tok[gather_ranges(rel_ptr[rel], lens)]
    return _csr(np.concatenate([own_e, nbr_e, rel_e]), np.concatenate([own_t, nbr_t, rel_t]), n, unique=True)
