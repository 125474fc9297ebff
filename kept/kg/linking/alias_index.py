"""Candidate generation for the entity linker: an Aho-Corasick automaton over a store's names.

Every label and alias of a KG store becomes a *key*; a C-backed automaton
(pyahocorasick) finds every key occurring in a text in one pass. Values stored
in the automaton are plain ints (key ids) that index NumPy CSR arrays::

    key_indptr  int64 [K + 1]   candidates of key k are rows key_indptr[k]:key_indptr[k + 1]
    key_length  int32 [K]       length of the key in *marked* characters (see below)
    cand_entity int32 [C]       entity id of each candidate, sorted by degree (descending) per key
    cand_label  bool  [C]       True when the key is the entity's label (not only an alias)

so a million aliases cost a few bytes each beyond the automaton itself.

**Word boundaries without a Python scan.** Before matching, a sentinel
character (``\\x01``) is inserted at every word boundary of the text and of every
key. A boundary lies between two characters of which exactly one is a *word
character*: Python's ``\\w`` (letters, digits, underscore) except the scripts
written without spaces (Han, kana, Hangul), which are matched character by
character. A key such as ``"paris"`` becomes ``"\\x01paris\\x01"`` and can only
match where the text has boundaries on both sides, so ``Paris`` never matches
inside ``Parisian``, while ``北京`` matches anywhere in Chinese text. Offsets
are mapped back to the original text with ``np.searchsorted`` over the sentinel
positions. Whitespace characters are matched as a plain space; keys have their
whitespace runs collapsed to one space.

**Case.** ``case="auto"`` (the default) folds case (length-preserving
``str.lower``) for every name except all-caps acronyms of at most 4 characters
(``US``, ``WHO``, ``U.S.``, ``IT``): those stay case-sensitive, so ``it`` and
``who`` in running text are not linked to them. Case-sensitive keys live in a
second (small) automaton run over the unfolded text. ``"insensitive"`` folds
every name, ``"sensitive"`` none.

**Filtered names.** Names shorter than ``min_chars`` characters, names whose
folded form is a stop word (except acronyms matched with their case: ``US``,
``IT``) and names without any letter (pure numbers or punctuation, unless
``keep_numeric``) are left out.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import ahocorasick
import numpy as np

from kept.kg.linking.entity_bags import build_bags
from kept.kg.linking.textnorm import EN_STOP_WORDS, ZH_STOP_WORDS, char_tables, codes_of, fold_case
from kept.kg.store import KGStore

INDEX_FORMAT_VERSION = 2  # 2: .npy only (key_chars, key_exact), no pickled automata
SENTINEL = "\x01"
_SEP = "\x00"  # joins keys for one vectorised marking pass; a non-word character


def _decode(codes: np.ndarray) -> str:
    return codes.astype(np.uint32, copy=False).tobytes().decode("utf-32-le", "surrogatepass")


def word_boundaries(codes: np.ndarray) -> np.ndarray:
    """int64 [b]: positions 0..n where one side is a word character and the other is not."""
    is_word = char_tables()[0][codes]                                    # [n]
    before = np.concatenate(([False], is_word))                          # [n + 1]: char left of position
    after = np.concatenate((is_word, [False]))                           # [n + 1]: char right of position
    return np.flatnonzero(before != after)


def mark(codes: np.ndarray, boundaries: np.ndarray) -> str:
    """The marked string: whitespace as ' ', SENTINEL inserted at each boundary position."""
    codes = np.where(char_tables()[1][codes], 32, codes)
    return _decode(np.insert(codes, boundaries, 1))


def _is_acronym(name: str) -> bool:
    """All-caps and at most 4 characters: ``US``, ``WHO``, ``U.S.``."""
    return len(name) <= 4 and name.isupper()


@dataclass(frozen=True)
class IndexOptions:
    """Which names become keys, and how they are normalised (part of the cache key).

    case: "auto" (fold all but all-caps acronyms of <= 4 characters), "insensitive" or "sensitive".
    min_chars: shortest name kept, in characters (default 2).
    stop_words: folded names never linked (case-insensitive keys only); None = the
        built-in list of ``language`` (EN_STOP_WORDS / ZH_STOP_WORDS).
    language: "en" or "zh"; picks the default stop words.
    keep_numeric: keep names without any letter, e.g. "1984" (default False).
    max_neighbours: neighbours whose labels enter an entity's context bag (default 64;
        see :mod:`kept.kg.linking.entity_bags`).
    """

    case: str = "auto"
    min_chars: int = 2
    stop_words: frozenset[str] | None = None
    language: str = "en"
    keep_numeric: bool = False
    max_neighbours: int = 64

    def __post_init__(self) -> None:
        if self.case not in ("auto", "insensitive", "sensitive"):
            raise ValueError(f"case must be auto, insensitive or sensitive, not {self.case!r}")
        if self.language not in ("en", "zh"):
            raise ValueError(f"language must be en or zh, not {self.language!r}")

    @property
    def stop_list(self) -> frozenset[str]:
        if self.stop_words is not None:
            return frozenset(self.stop_words)
        return EN_STOP_WORDS if self.language == "en" else ZH_STOP_WORDS

    def is_case_sensitive(self, name: str) -> bool:
        """Whether ``name`` is matched with its exact case."""
        if self.case == "auto":
            return _is_acronym(name)
        return self.case == "sensitive"

    def to_json(self) -> dict:
        d = asdict(self)
        d["stop_words"] = sorted(self.stop_list)
        return d


class AliasIndex:
    """Keys (normalised names) -> candidate entities, with the automata that find them in text.

    Build with :meth:`from_store` (or :meth:`from_names`); save/load with :meth:`save` / :meth:`load`.
    """

    def __init__(self, options: IndexOptions, automata: dict[str, ahocorasick.Automaton | None],
                 key_indptr: np.ndarray, key_length: np.ndarray, cand_entity: np.ndarray, cand_label: np.ndarray,
                 bag_indptr: np.ndarray | None = None, bag_tokens: np.ndarray | None = None):
        self.options = options
        #: "folded" runs over the case-folded text, "exact" over the text as it is
        self.automata = automata
        self.key_indptr, self.key_length = key_indptr, key_length
        self.cand_entity, self.cand_label = cand_entity, cand_label
        #: context bags (kept.kg.linking.entity_bags): int64 [num_entities + 1], uint32 [T]; empty when absent
        num_entities = int(cand_entity.max()) + 1 if len(cand_entity) else 0
        self.bag_indptr = bag_indptr if bag_indptr is not None else np.zeros(num_entities + 1, np.int64)
        self.bag_tokens = bag_tokens if bag_tokens is not None else np.zeros(0, np.uint32)

    @property
    def num_keys(self) -> int:
        return len(self.key_length)

    # ---- building ----------------------------------------------------------------------------
    @classmethod
    def from_store(cls, store: KGStore, options: IndexOptions, progress: bool = False) -> AliasIndex:
        """Index every label and alias of ``store`` (``store.iter_names()``: labels first, then aliases)."""
        (n_labels,) = store.db.execute("SELECT COUNT(*) FROM entities WHERE label IS NOT NULL").fetchone()
        names = store.iter_names()
        if progress:
            from tqdm.auto import tqdm
            (n_alias,) = store.db.execute("SELECT COUNT(*) FROM aliases").fetchone()
            names = tqdm(names, total=n_labels + n_alias, desc="names", unit=" names")
        index = cls.from_names(names, store.degree(), options, n_labels=n_labels, progress=progress)
        # context bags for the entities that can meet a competitor: candidates of ambiguous keys
        # and of case-sensitive keys (whose folded twin may be a key too)
        counts = np.diff(index.key_indptr)                                        # [K]
        exact_key = np.zeros(index.num_keys, dtype=bool)
        if index.automata["exact"] is not None:
            exact_key[list(index.automata["exact"].values())] = True
        need = np.zeros(store.num_entities, dtype=bool)
        need[index.cand_entity[np.repeat((counts > 1) | exact_key, counts)]] = True
        index.bag_indptr, index.bag_tokens = build_bags(store, need, options.max_neighbours)
        return index

    @classmethod
    def from_names(cls, names, degree: np.ndarray, options: IndexOptions, n_labels: int = 0,
                   progress: bool = False) -> AliasIndex:
        """Index ``(entity id, name)`` pairs; the first ``n_labels`` pairs are labels.

        degree: int [num_entities], orders the candidates of a key (most connected first).
        """
        ids, cs_flags, label_flags, texts = [], [], [], []
        stop = options.stop_list
        for i, (entity_id, name) in enumerate(names):
            name = " ".join(name.split()) if name else ""
            if len(name) < options.min_chars or _SEP in name or SENTINEL in name:
                continue
            if not options.keep_numeric and not any(c.isalpha() for c in name):
                continue
            cs = options.is_case_sensitive(name)
            folded = fold_case(name)
            if folded in stop and not (cs and _is_acronym(name)):
                continue
            name = name if cs else folded
            ids.append(entity_id)
            cs_flags.append(cs)
            label_flags.append(i < n_labels)
            texts.append(name)
        # mark all names in one vectorised pass: joined by a non-word separator, then split again
        joined = _SEP.join(texts)
        codes = codes_of(joined)
        marked = mark(codes, word_boundaries(codes)).split(_SEP) if texts else []
        del joined, codes, texts

        key_ids: dict[tuple[bool, str], int] = {}
        pair_key = np.empty(len(marked), dtype=np.int64)
        for i, (cs, key) in enumerate(zip(cs_flags, marked)):
            pair_key[i] = key_ids.setdefault((cs, key), len(key_ids))
        pair_entity = np.asarray(ids, dtype=np.int64)
        pair_label = np.asarray(label_flags, dtype=bool)
        del ids, label_flags, marked

        # one row per (key, entity), label flag OR-ed; rows sorted by key, then degree descending
        degree = np.asarray(degree, dtype=np.int64)
        order = np.lexsort((~pair_label, pair_entity, pair_key))
        pair_key, pair_entity, pair_label = pair_key[order], pair_entity[order], pair_label[order]
        first = np.ones(len(pair_key), dtype=bool)
        first[1:] = (pair_key[1:] != pair_key[:-1]) | (pair_entity[1:] != pair_entity[:-1])
        pair_key, pair_entity, pair_label = pair_key[first], pair_entity[first], pair_label[first]
        order = np.lexsort((pair_entity, -degree[pair_entity], pair_key))
        cand_entity = pair_entity[order].astype(np.int32)
        cand_label = pair_label[order]
        key_indptr = np.zeros(len(key_ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(pair_key, minlength=len(key_ids)), out=key_indptr[1:])

        automata: dict[str, ahocorasick.Automaton | None] = {"folded": None, "exact": None}
        key_length = np.empty(len(key_ids), dtype=np.int32)
        items = key_ids.items()
        if progress:
            from tqdm.auto import tqdm
            items = tqdm(items, total=len(key_ids), desc="automaton", unit=" keys")
        for (cs, key), key_id in items:
            which = "exact" if cs else "folded"
            if automata[which] is None:
                automata[which] = ahocorasick.Automaton(ahocorasick.STORE_INTS)
            automata[which].add_word(key, key_id)
            key_length[key_id] = len(key)
        for automaton in automata.values():
            if automaton is not None:
                automaton.make_automaton()
        return cls(options, automata, key_indptr, key_length, cand_entity, cand_label)

    # ---- matching ----------------------------------------------------------------------------
    def find(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every key occurrence in ``text`` that respects word boundaries.

        Returns (starts, ends, key_ids): int64 [m] character offsets ``[start, end)`` into
        ``text`` and the key found there, in no particular order (overlaps included).
        """
        codes = codes_of(text)
        bounds = word_boundaries(codes)                                  # [b] in 0..n
        sentinel_pos = bounds + np.arange(len(bounds))                   # [b] in the marked string
        found = []
        for which, automaton in self.automata.items():
            if automaton is None:
                continue
            source = codes if which == "exact" else codes_of(fold_case(text))
            hits = np.fromiter(itertools.chain.from_iterable(automaton.iter(mark(source, bounds))),
                               dtype=np.int64).reshape(-1, 2)            # [m, 2] (last marked index, key id)
            found.append(hits)
        hits = np.concatenate(found) if found else np.zeros((0, 2), np.int64)
        last, key = hits[:, 0], hits[:, 1]
        first = last - self.key_length[key] + 1
        starts = first - np.searchsorted(sentinel_pos, first, side="left")
        ends = last + 1 - np.searchsorted(sentinel_pos, last, side="right")
        return starts, ends, key

    def candidates(self, key_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(entity ids int32 [c], is-label bool [c]) of a key, most connected entity first."""
        a, b = self.key_indptr[key_id], self.key_indptr[key_id + 1]
        return self.cand_entity[a:b], self.cand_label[a:b]

    def has_name(self, name: str) -> bool:
        """Whether ``name`` is a key of the index (after the same normalisation as at build time)."""
        name = " ".join(name.split())
        cs = self.options.is_case_sensitive(name)
        text = name if cs else fold_case(name)
        codes = codes_of(text)
        automaton = self.automata["exact" if cs else "folded"]
        return automaton is not None and automaton.exists(mark(codes, word_boundaries(codes)))

    # ---- persistence -------------------------------------------------------------------------
    # Plain .npy arrays only (read with allow_pickle=False): a cache from a shared store cannot run
    # code. The automata are rebuilt from the keys on load (key_chars, key_exact), not unpickled.
    _ARRAYS = ("key_indptr", "key_length", "cand_entity", "cand_label", "bag_indptr", "bag_tokens")

    def _keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(key_chars uint32 [sum key_length]: the marked keys' code points in key id order,
        key_exact bool [K]: the key lives in the case-sensitive automaton)."""
        keys, exact = [""] * self.num_keys, np.zeros(self.num_keys, dtype=bool)
        for which, automaton in self.automata.items():
            if automaton is not None:
                for key, key_id in automaton.items():
                    keys[key_id], exact[key_id] = key, which == "exact"
        return codes_of("".join(keys)).astype(np.uint32), exact

    def save(self, directory: str | Path, extra_meta: dict | None = None) -> Path:
        """Write the index into ``directory`` atomically (a temp dir renamed into place)."""
        directory = Path(directory)
        tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            key_chars, key_exact = self._keys()
            for name, array in [*((n, getattr(self, n)) for n in self._ARRAYS),
                                ("key_chars", key_chars), ("key_exact", key_exact)]:
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
            meta = {"format_version": INDEX_FORMAT_VERSION, "options": self.options.to_json(),
                    "keys": self.num_keys, "candidates": len(self.cand_entity), **(extra_meta or {})}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
            try:
                os.rename(tmp, directory)
            except OSError:  # another process finished the same index first: keep theirs
                if not (directory / "meta.json").exists():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    @classmethod
    def load(cls, directory: str | Path, options: IndexOptions, num_entities: int | None = None) -> AliasIndex:
        """Read and validate an index written by :meth:`save` (arrays memory-mapped, no pickle).

        num_entities: the store's entity count; candidate ids must lie below it.
        :raises InvalidIndexCache: for anything that is not such an index (the caller rebuilds it).
        """
        directory = Path(directory)
        try:
            meta = json.loads((directory / "meta.json").read_bytes().decode("utf-8"))
            arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                      for name in (*cls._ARRAYS, "key_chars", "key_exact")}
        except (OSError, ValueError, EOFError) as exc:  # missing, truncated, garbage, pickled object arrays
            raise InvalidIndexCache(f"{directory}: {exc}") from None
        _check(directory, meta, options, arrays, num_entities)
        key_chars, key_exact = arrays.pop("key_chars"), arrays.pop("key_exact")
        text = _decode(np.asarray(key_chars))
        ends = np.cumsum(arrays["key_length"], dtype=np.int64).tolist()
        automata: dict[str, ahocorasick.Automaton | None] = {"folded": None, "exact": None}
        for key_id, (start, end, cs) in enumerate(zip([0, *ends[:-1]], ends, key_exact.tolist())):
            which = "exact" if cs else "folded"
            if automata[which] is None:
                automata[which] = ahocorasick.Automaton(ahocorasick.STORE_INTS)
            automata[which].add_word(text[start:end], key_id)
        for automaton in automata.values():
            if automaton is not None:
                automaton.make_automaton()
        return cls(options, automata, **arrays)


class InvalidIndexCache(ValueError):
    """A linker cache directory that is not a valid index of this format (rebuilt, never trusted)."""


_DTYPES = {"key_indptr": np.int64, "key_length": np.int32, "cand_entity": np.int32, "cand_label": np.bool_,
           "bag_indptr": np.int64, "bag_tokens": np.uint32, "key_chars": np.uint32, "key_exact": np.bool_}


def _check(directory: Path, meta, options: IndexOptions, a: dict[str, np.ndarray], num_entities: int | None) -> None:
    """Raise InvalidIndexCache unless the arrays form an index of ``options`` (shapes, dtypes, ranges)."""
    def bad(problem: str) -> InvalidIndexCache:
        return InvalidIndexCache(f"{directory}: {problem}")
    if not isinstance(meta, dict) or meta.get("format_version") != INDEX_FORMAT_VERSION:
        raise bad(f"not an index of format {INDEX_FORMAT_VERSION}")
    if meta.get("options") != json.loads(json.dumps(options.to_json())):
        raise bad("built with other options")
    for name, dtype in _DTYPES.items():
        if a[name].ndim != 1 or a[name].dtype != dtype:
            raise bad(f"{name}.npy: expected a 1-D {np.dtype(dtype)} array, got {a[name].ndim}-D {a[name].dtype}")
    k, c = len(a["key_length"]), len(a["cand_entity"])
    if meta.get("keys") != k or meta.get("candidates") != c or len(a["key_indptr"]) != k + 1 \
            or len(a["cand_label"]) != c or len(a["key_exact"]) != k:
        raise bad("array lengths do not match each other or meta.json")
    for ptr, total in (("key_indptr", c), ("bag_indptr", len(a["bag_tokens"]))):
        p = a[ptr]
        if len(p) == 0 or p[0] != 0 or p[-1] != total or (np.diff(p) < 0).any():
            raise bad(f"{ptr}.npy: not offsets from 0 to {total}")
    if (np.asarray(a["key_length"]) <= 0).any() or int(a["key_length"].sum(dtype=np.int64)) != len(a["key_chars"]):
        raise bad("key_length.npy does not match key_chars.npy")
    if (np.asarray(a["key_chars"]) > 0x10FFFF).any():
        raise bad("key_chars.npy: not Unicode code points")
    if c and (int(a["cand_entity"].min()) < 0 or int(a["cand_entity"].max()) >= len(a["bag_indptr"]) - 1
              or (num_entities is not None and int(a["cand_entity"].max()) >= num_entities)):
        raise bad("cand_entity.npy: entity ids out of range")
