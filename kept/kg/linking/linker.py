"""The entity linker: finds mentions of a KG store's entities in text and picks one entity each.

Three steps (see ``docs/benchmarks.md`` for quality and speed on real data):

1. **Candidates** (:mod:`kept.kg.linking.alias_index`): every label and alias of the store is
   a key of a C-backed Aho-Corasick automaton whose int values index NumPy CSR arrays
   of candidate entities. Matches respect word boundaries (``Paris`` never matches
   inside ``Parisian``; Han characters match anywhere, or only on jieba word
   boundaries with ``jieba_boundaries=True``).
2. **Overlaps**: leftmost-longest -- among the valid matches, the one starting first
   wins, and of those starting at the same character the longest; matches overlapping
   a winner are dropped.
3. **Disambiguation** (:mod:`kept.kg.linking.disambiguation`): alias prior from entity degree,
   a label bonus, context overlap and TransE coherence, combined into a softmax
   probability; mentions scoring below ``threshold`` are dropped.

The built index is cached inside the store directory under
``linker/<hash of the index options and the store's meta.json>/`` so a large store
does not rebuild its automaton every time.

Wordpiece alignment: :func:`kept.data.linked.attach_entities` maps character spans onto tokenizer
offsets (an entity sits on its mention's first wordpiece, as in ERNIE (Tsinghua)), and
:func:`kept.data.linked.link_example` produces a :class:`~kept.data.examples.LinkedExample`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kept.kg.linking.alias_index import INDEX_FORMAT_VERSION, AliasIndex, IndexOptions, InvalidIndexCache
from kept.kg.linking.disambiguation import DisambiguationConfig, Disambiguator
from kept.kg.linking.entity_bags import gather_ranges
from kept.kg.store import KGStore, open_store


@dataclass(frozen=True)
class LinkerConfig:
    """How the linker matches names and scores candidates.

    language: "en" (default) or "zh"; picks the default stop words and the word units of
        :func:`kept.data.linked.link_example`.
    case: "auto" (default: case-insensitive except all-caps acronyms of <= 4 characters),
        "insensitive" or "sensitive".
    min_alias_chars: shortest name linked, in characters (default 2).
    stop_words: names never linked, compared case-folded; None (default) = the built-in list.
    keep_numeric: also link names without any letter, e.g. "1984" (default False).
    jieba_boundaries: accept a match only when it starts and ends on jieba word boundaries
        (Chinese; default False: character level).
    threshold: lowest score of a kept mention, in [0, 1] (default 0.0: keep the best candidate).
    max_neighbours: neighbours whose labels enter an entity's context bag (default 64).
    disambiguation: weights and bounds of the score (:class:`DisambiguationConfig`).
    """

    language: str = "en"
    case: str = "auto"
    min_alias_chars: int = 2
    stop_words: frozenset[str] | None = None
    keep_numeric: bool = False
    jieba_boundaries: bool = False
    threshold: float = 0.0
    max_neighbours: int = 64
    disambiguation: DisambiguationConfig = field(default_factory=DisambiguationConfig)

    def index_options(self) -> IndexOptions:
        stop = frozenset(self.stop_words) if self.stop_words is not None else None
        return IndexOptions(case=self.case, min_chars=self.min_alias_chars, stop_words=stop,
                            language=self.language, keep_numeric=self.keep_numeric,
                            max_neighbours=self.max_neighbours)


@dataclass(frozen=True)
class Mention:
    """A linked mention: ``text[start:end] == surface`` refers to store entity ``entity_id``."""

    start: int
    end: int
    surface: str
    entity_id: int
    key: str
    label: str | None
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


class EntityLinker:
    """Links texts to the entities of a KG store. Build with :meth:`from_store`.

    store: the KG store.
    index: its alias index (built or loaded by :meth:`from_store`).
    config: the options the index was built with and the scoring options.
    """

    def __init__(self, store: KGStore, index: AliasIndex, config: LinkerConfig):
        self.store, self.index, self.config = store, index, config
        self.disambiguator = Disambiguator(store, index, config.disambiguation)
        self._names: dict[int, tuple[str, str | None]] = {}

    @classmethod
    def from_store(cls, store: KGStore | str | Path, config: LinkerConfig | None = None, cache: bool = True,
                   rebuild: bool = False, progress: bool = False) -> EntityLinker:
        """A linker over ``store``, its index loaded from the store's cache or built (and cached).

        store: an open store or its directory.
        config: linker options (default :class:`LinkerConfig()`).
        cache: read/write the index under ``STORE/linker/<hash>/`` (default True). A store
            directory that cannot be written is used without caching.
        rebuild: build the index even when a cached one exists (and replace it).
        progress: show progress bars while building.
        """
        store = store if isinstance(store, KGStore) else open_store(store)
        config = config or LinkerConfig()
        options = config.index_options()
        directory = index_cache_dir(store, options)
        if cache and not rebuild and directory.exists():
            try:
                return cls(store, AliasIndex.load(directory, options, store.num_entities), config)
            except InvalidIndexCache as exc:  # never trusted: rebuilt in its place
                print(f"kept: notice: rebuilding the linker cache ({exc})", file=sys.stderr)
                rebuild = True
        index = AliasIndex.from_store(store, options, progress=progress)
        if cache:
            if rebuild and (directory.is_symlink() or directory.is_file()):
                directory.unlink()  # a link is removed, never followed
            elif rebuild and directory.is_dir():
                shutil.rmtree(directory)
            try:
                directory.parent.mkdir(exist_ok=True)
                index.save(directory, {"store": str(store.path), "store_created": store.meta.get("created")})
            except OSError as exc:
                print(f"kept: warning: linker index not cached ({exc})", file=sys.stderr)
        return cls(store, index, config)

    # ---- linking -------------------------------------------------------------------------------
    def link_spans(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Link one text, as arrays: (spans int64 [M, 2] character [start, end), entity ids int64 [M],
        scores float32 [M]), in text order."""
        return self.link_batch([text])[0]

    def link_batch(self, texts: list[str], batch_chars: int = 1 << 16
                   ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`link_spans` of many texts. Short texts are linked together (joined by a separator
        no name can cross, about ``batch_chars`` characters at once; default 65,536), which is much
        faster than one call per text; the result is the same."""
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        group: list[str] = []
        size = 0
        for text in [*texts, None]:
            if text is None or (group and size + len(text) > batch_chars):
                out += self._link_joined(group)
                group, size = [], 0
            if text is not None:
                group.append(text)
                size += len(text) + 1
        return out

    def _link_joined(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if not texts:
            return []
        text = _JOIN.join(texts)
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        doc_start = np.concatenate([[0], np.cumsum(lengths[:-1] + 1)])                   # [D]
        starts, ends, keys = self.index.find(text)
        if self.config.jieba_boundaries and len(starts):
            ok = jieba_boundary_mask(text)                                 # [n + 1]
            keep = ok[starts] & ok[ends]
            starts, ends, keys = starts[keep], ends[keep], keys[keep]
        spans, span_keys = select_leftmost_longest(starts, ends, keys)
        index, limit = self.index, self.config.disambiguation.max_candidates
        fixed = np.full(len(spans), -1, dtype=np.int64)      # [M] entity of unambiguous mentions
        pairs = [np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)]
        if len(spans):
            first_key = np.asarray([k[0] for k in span_keys], dtype=np.int64)               # [M]
            single_key = np.asarray([len(k) == 1 for k in span_keys], dtype=bool)
            ptr = index.key_indptr[first_key]
            count = index.key_indptr[first_key + 1] - ptr
            one = single_key & (count == 1)
            fixed[one] = index.cand_entity[ptr[one]]
            many = np.flatnonzero(single_key & (count > 1))                                # [A]
            n = np.minimum(count[many], limit)
            rows = gather_ranges(ptr[many], n)                                             # [Q]
            pairs = [np.repeat(many, n), index.cand_entity[rows].astype(np.int64), index.cand_label[rows]]
            for i in np.flatnonzero(~single_key).tolist():        # rare: a span matched by several keys
                ids, labels = self._candidates(span_keys[i])
                if len(ids) == 1:
                    fixed[i] = ids[0]
                else:
                    pairs = [np.concatenate([pairs[0], np.full(min(len(ids), limit), i)]),
                             np.concatenate([pairs[1], ids[:limit]]), np.concatenate([pairs[2], labels[:limit]])]
            order = np.argsort(pairs[0], kind="stable")          # group rows by mention
            pairs = [p[order] for p in pairs]
        doc = np.searchsorted(doc_start, spans[:, 0], side="right") - 1                  # [M] text of mention
        limits = np.stack([doc_start[doc], doc_start[doc] + lengths[doc]], axis=1)       # [M, 2]
        entity, score = self.disambiguator.choose(text, spans, fixed, *pairs, limits=limits, doc=doc)
        keep = score >= self.config.threshold
        spans, entity, score, doc = spans[keep] - doc_start[doc[keep], None], entity[keep], score[keep], doc[keep]
        cut = np.searchsorted(doc, np.arange(len(texts) + 1))
        return [(spans[a:b], entity[a:b], score[a:b]) for a, b in zip(cut[:-1].tolist(), cut[1:].tolist())]

    def _candidates(self, keys: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Candidates of a span matched by several keys (e.g. "US" exactly and "us" folded), merged."""
        ids = np.concatenate([self.index.candidates(k)[0] for k in keys]).astype(np.int64)
        labels = np.concatenate([self.index.candidates(k)[1] for k in keys])
        order = np.lexsort((~labels, ids))
        ids, labels = ids[order], labels[order]
        first = np.append(True, ids[1:] != ids[:-1])
        ids, labels = ids[first], labels[first]
        by_degree = np.argsort(-self.disambiguator.log_degree[ids], kind="stable")
        return ids[by_degree], labels[by_degree]

    def link(self, text: str) -> list[Mention]:
        """Link one text: its mentions, in text order."""
        return self._mentions(text, *self.link_spans(text))

    def _mentions(self, text: str, spans: np.ndarray, entity: np.ndarray, score: np.ndarray) -> list[Mention]:
        out = []
        for (start, end), e, s in zip(spans.tolist(), entity.tolist(), score.tolist()):
            key, label = self.describe(e)
            out.append(Mention(start, end, text[start:end], e, key, label, round(s, 6)))
        return out

    def link_many(self, texts: Iterable[str], batch_size: int = 256) -> Iterator[list[Mention]]:
        """:meth:`link` over many texts, lazily, ``batch_size`` texts per :meth:`link_batch` call."""
        batch: list[str] = []
        for text in _with_end(iter(texts)):
            if text is not None:
                batch.append(text)
            if batch and (text is None or len(batch) >= batch_size):
                for t, (spans, entity, score) in zip(batch, self.link_batch(batch)):
                    yield self._mentions(t, spans, entity, score)
                batch = []

    def describe(self, entity_id: int) -> tuple[str, str | None]:
        """(key, label) of an entity, cached."""
        if entity_id not in self._names:
            if len(self._names) > 1_000_000:
                self._names.clear()
            self._names[entity_id] = self.store.db.execute(
                "SELECT key, label FROM entities WHERE id=?", (entity_id,)).fetchone()
        return self._names[entity_id]


_JOIN = "\x00"  # joins texts of a batch: not a word character, in no key


def _with_end(items: Iterator[str]) -> Iterator[str | None]:
    yield from items
    yield None


def index_cache_dir(store: KGStore, options: IndexOptions) -> Path:
    """``STORE/linker/<hash>``: the hash covers the index format, the options and the store's meta.json."""
    payload = {"format": INDEX_FORMAT_VERSION, "options": options.to_json(), "store": store.meta}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return store.path / "linker" / digest[:16]


def select_leftmost_longest(starts: np.ndarray, ends: np.ndarray, keys: np.ndarray
                            ) -> tuple[np.ndarray, list[list[int]]]:
    """Resolve overlapping matches: leftmost first, longest among those starting together.

    starts, ends, keys: int [m] matches (character spans and key ids), any order.
    Returns (spans int64 [M, 2] in text order, the key ids matching each span exactly).
    """
    if len(starts) == 0:
        return np.zeros((0, 2), np.int64), []
    order = np.lexsort((keys, -(ends - starts), starts))                  # start asc, length desc, key
    s, e, k = starts[order], ends[order], keys[order]
    new_span = np.append(True, (s[1:] != s[:-1]) | (e[1:] != e[:-1]))
    group = np.flatnonzero(new_span)                                     # [G] runs of one identical span
    run = np.diff(np.append(group, len(s)))                              # [G] keys matching that span
    head = group[np.append(True, s[group[1:]] != s[group[:-1]])]         # [H] longest span at each start
    head_run = run[np.searchsorted(group, head)]
    # leftmost-longest: from the first head, jump to the first head starting at or after its end
    jump = np.searchsorted(s[head], e[head], side="left").tolist()
    chosen, i = [], 0
    while i < len(jump):
        chosen.append(i)
        i = jump[i]
    chosen = np.asarray(chosen, dtype=np.int64)
    first, count = head[chosen], head_run[chosen]
    spans = np.stack([s[first], e[first]], axis=1)
    k_list = k.tolist()
    return spans, [k_list[a : a + n] for a, n in zip(first.tolist(), count.tolist())]


def jieba_boundary_mask(text: str) -> np.ndarray:
    """bool [len(text) + 1]: True at the positions where a jieba word starts or ends."""
    import jieba

    mask = np.zeros(len(text) + 1, dtype=bool)
    mask[[start for _, start, _ in jieba.tokenize(text)] + [len(text)]] = True
    return mask
