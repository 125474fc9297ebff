"""K-BERT branches: the (relation, object) wordpieces every entity can hang off a sentence word, as flat arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kept.kg.store import KGStore, open_store

#: the tokenizations of labels: "zh" one token per character (K-BERT), "en" the tokenizer's wordpieces
LANGUAGES = ("zh", "en")


def ragged_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int64 [sum(lengths)]: ``concat(arange(s, s + n) for s, n in zip(starts, lengths))``, vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    before = np.cumsum(lengths) - lengths                                     # [k] output offset of each run
    return np.repeat(np.asarray(starts, dtype=np.int64) - before, lengths) + np.arange(total)


class CharVocab:
    """Character -> vocabulary id as one array lookup (Chinese BERT vocabularies have one id per character).

    tokenizer: a Hugging Face BERT tokenizer. A character missing from the vocabulary falls
    back to its lowercase form, then to ``[UNK]``; whitespace characters are dropped.
    """

    def __init__(self, tokenizer: Any):
        self.unk_id = int(tokenizer.unk_token_id)
        self.table = np.full(0x110000, self.unk_id, dtype=np.int64)          # [codepoints]
        vocab = tokenizer.get_vocab()
        singles = {piece: i for piece, i in vocab.items() if len(piece) == 1}
        lower_fallback = {c: singles[c.lower()] for c in map(chr, range(0x250)) if c not in singles
                          and len(c.lower()) == 1 and c.lower() in singles}
        for char, i in {**lower_fallback, **singles}.items():
            self.table[ord(char)] = i
        self.is_space = np.zeros(0x110000, dtype=bool)
        self.is_space[[ord(c) for c in " \t\n\r\x0b\x0c\u3000\u00a0\u2002\u2003\u2009\u200b"]] = True

    def codepoints(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ids int64 [n], char_index int64 [n])``: the id of each non-space character and where it is."""
        points = self.codepoints(text)
        keep = np.flatnonzero(~self.is_space[points])
        return self.table[points[keep]], keep


class BranchTable:
    """Which branches each KG subject gets, and their tokens (cached per entity and relation).

    store: a KG store or its directory. tokenizer: the model's BERT tokenizer.
    language: "zh" (labels split into characters, the reference) or "en" (wordpieces).
    max_entities: branches per word at most (default 2). with_predicate: branch = relation
    label + object label (default True) or object label only. seed: seed of the candidate
    order (default 0). The table pickles as its options (DataLoader workers reopen the store).
    """

    def __init__(self, store: KGStore | str | Path, tokenizer: Any, language: str = "en", max_entities: int = 2,
                 with_predicate: bool = True, seed: int = 0):
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
        if max_entities < 0:
            raise ValueError(f"max_entities must be >= 0, got {max_entities}")
        self.store_path = Path(store.path if isinstance(store, KGStore) else store)
        self._store = store if isinstance(store, KGStore) else None
        self.tokenizer, self.language = tokenizer, language
        self.max_entities, self.with_predicate, self.seed = max_entities, with_predicate, seed
        self._reset_caches()

    def _reset_caches(self) -> None:
        self._order: tuple[np.ndarray, np.ndarray] | None = None
        self._chars = CharVocab(self.tokenizer) if self.language == "zh" else None
        self._relation_tokens: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._entity_start: np.ndarray | None = None                          # [N] offset in _pool, -1 uncached
        self._entity_length: np.ndarray | None = None                         # [N]
        self._pool = np.zeros(1024, dtype=np.int64)
        self._pool_size = 0

    def __getstate__(self) -> dict:
        return {k: self.__dict__[k] for k in ("store_path", "tokenizer", "language", "max_entities",
                                               "with_predicate", "seed")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._store = None
        self._reset_caches()

    @property
    def store(self) -> KGStore:
        if self._store is None:
            self._store = open_store(self.store_path)
        return self._store

    def options(self) -> dict:
        """The options that define the branches (for kept.json)."""
        return {"max_entities": self.max_entities, "with_predicate": self.with_predicate,
                "branch_seed": self.seed, "language": self.language}

    # ---- candidates ------------------------------------------------------------------------------
    def candidate_order(self) -> tuple[np.ndarray, np.ndarray]:
        """``(indptr int64 [N + 1], triple_rows int64 [M])``: each subject's candidate edges in seeded order.

        Computed once for the whole store with sorts (no loop over entities).
        """
        if self._order is None:
            triples = np.asarray(self.store.triples)
            heads, tails = triples[:, 0].astype(np.int64), triples[:, 2].astype(np.int64)
            keys = np.random.default_rng([self.seed, 0x6B62]).random(len(triples))           # [E]
            rows = np.arange(len(triples))
            if not self.with_predicate:  # one candidate per distinct object
                by_object = np.lexsort((keys, tails, heads))
                first = np.ones(len(by_object), dtype=bool)
                first[1:] = (heads[by_object][1:] != heads[by_object][:-1]) | (tails[by_object][1:] != tails[by_object][:-1])
                rows = by_object[first]
            rows = rows[np.lexsort((keys[rows], heads[rows]))]
            counts = np.bincount(heads[rows], minlength=self.store.num_entities)
            self._order = (np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), rows.astype(np.int64))
        return self._order

    def candidates(self, entity_id: int) -> np.ndarray:
        """int64 [c]: triple rows of one subject's candidate branches, in the seeded order."""
        indptr, rows = self.candidate_order()
        return rows[indptr[entity_id] : indptr[entity_id + 1]]

    def choose(self, entity_ids: np.ndarray, withheld: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(owner int64 [R], triple_rows int64 [R])``: the first ``max_entities`` candidates of each entity.

        entity_ids: int [A]. ``owner[r]`` is the index in ``entity_ids`` the branch belongs to;
        branches come grouped by owner, in candidate order.
        withheld: int [A] a store triple row each entity must not show (-1: none), or None. A
        withheld candidate is skipped and the next one in the seeded order takes its place: the
        branches of the KG minus that triple (the probe's ``leave-one-out`` condition).
        """
        indptr, rows = self.candidate_order()
        entity_ids = np.asarray(entity_ids, dtype=np.int64)
        if len(entity_ids) and (entity_ids.min() < 0 or entity_ids.max() >= len(indptr) - 1):
            raise ValueError(f"entity id out of range 0..{len(indptr) - 2} for store {self.store_path}")
        extra = 0 if withheld is None else 1                                      # one spare for a skipped row
        count = np.minimum(indptr[entity_ids + 1] - indptr[entity_ids], self.max_entities + extra)   # [A]
        owner = np.repeat(np.arange(len(entity_ids)), count)
        chosen = rows[ragged_index(indptr[entity_ids], count)]
        if withheld is None:
            return owner, chosen
        keep = chosen != np.asarray(withheld, dtype=np.int64)[owner]
        owner, chosen = owner[keep], chosen[keep]
        rank = np.arange(len(owner)) - np.searchsorted(owner, owner)              # position within its owner
        keep = rank < self.max_entities
        return owner[keep], chosen[keep]

    # ---- tokens ----------------------------------------------------------------------------------
    def _tokenize(self, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(lengths int64 [k], ids int64 [sum])`` of labels."""
        if not labels:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if self._chars is not None:  # one vocabulary lookup over all labels joined
            lengths = np.asarray([len(label) for label in labels], dtype=np.int64)
            points = self._chars.codepoints("".join(labels))
            keep = ~self._chars.is_space[points]
            owner = np.repeat(np.arange(len(labels)), lengths)
            return np.bincount(owner[keep], minlength=len(labels)), self._chars.table[points[keep]]
        ids = self.tokenizer(labels, add_special_tokens=False)["input_ids"]
        return np.asarray([len(x) for x in ids], dtype=np.int64), np.asarray([i for x in ids for i in x], np.int64)

    def relation_tokens(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(starts [NR], lengths [NR], ids)``: every relation label tokenised (once)."""
        if self._relation_tokens is None:
            rows = self.store.db.execute("SELECT id, COALESCE(label, key) FROM relations ORDER BY id").fetchall()
            lengths, ids = self._tokenize([label for _, label in rows])
            self._relation_tokens = (np.cumsum(lengths) - lengths, lengths, ids)
        return self._relation_tokens

    def entity_tokens(self, entity_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, lengths)`` into :attr:`token_pool` of entity labels; labels are tokenised once."""
        if self._entity_start is None:
            self._entity_start = np.full(self.store.num_entities, -1, dtype=np.int64)
            self._entity_length = np.zeros(self.store.num_entities, dtype=np.int64)
        entity_ids = np.asarray(entity_ids, dtype=np.int64)
        missing = np.unique(entity_ids[self._entity_start[entity_ids] < 0])
        for chunk in np.array_split(missing, max(1, -(-len(missing) // 900))):   # SQLite's variable limit
            if not len(chunk):
                continue
            marks = ",".join("?" * len(chunk))
            rows = dict(self.store.db.execute(f"SELECT id, COALESCE(label, key) FROM entities WHERE id IN ({marks})",
                                              [int(i) for i in chunk]).fetchall())
            lengths, ids = self._tokenize([rows[int(i)] for i in chunk])
            while self._pool_size + len(ids) > len(self._pool):
                self._pool = np.concatenate([self._pool, np.zeros_like(self._pool)])
            self._pool[self._pool_size : self._pool_size + len(ids)] = ids
            self._entity_start[chunk] = self._pool_size + np.cumsum(lengths) - lengths
            self._entity_length[chunk] = lengths
            self._pool_size += len(ids)
        return self._entity_start[entity_ids], self._entity_length[entity_ids]

    @property
    def token_pool(self) -> np.ndarray:
        return self._pool[: self._pool_size]

    def branch_tokens(self, triple_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(lengths int64 [R], ids int64 [sum])``: the tokens of each branch (relation + object, or object)."""
        triples = np.asarray(self.store.triples)[np.asarray(triple_rows, dtype=np.int64)]
        tail_start, tail_length = self.entity_tokens(triples[:, 2])
        pool = self.token_pool
        if not self.with_predicate:
            return tail_length, pool[ragged_index(tail_start, tail_length)]
        rel_starts, rel_lengths, rel_ids = self.relation_tokens()
        relations = triples[:, 1].astype(np.int64)
        # interleave [relation_r, object_r] runs over one array holding both token sources
        source = np.concatenate([rel_ids, pool])
        starts = np.stack([rel_starts[relations], tail_start + len(rel_ids)], axis=1).reshape(-1)       # [2R]
        lengths = np.stack([rel_lengths[relations], tail_length], axis=1).reshape(-1)                   # [2R]
        return rel_lengths[relations] + tail_length, source[ragged_index(starts, lengths)]

    def branches(self, entity_ids: np.ndarray, withheld: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(owner [R], lengths [R], ids)``: the chosen non-empty branches of each entity, tokenised
        (``withheld``: see :meth:`choose`)."""
        owner, rows = self.choose(entity_ids, withheld)
        lengths, ids = self.branch_tokens(rows)
        keep = lengths > 0
        if keep.all():
            return owner, lengths, ids
        return owner[keep], lengths[keep], ids[np.repeat(keep, lengths)]
