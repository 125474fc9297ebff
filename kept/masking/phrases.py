"""Collocation phrases learned from a corpus: Baidu-ERNIE phrase units without a parser.

A phrase is an n-gram of words (2 <= n <= ``max_len``) that occurs at least
``min_count`` times and whose parts occur together far more often than chance.
The statistic is normalised pointwise mutual information (Bouma, 2009)::

    npmi(a, b) = log(p(ab) / (p(a) p(b))) / -log p(ab)        in [-1, 1]

with ``p(x) = count(x) / N`` (N = number of words in the corpus). An n-gram with
n > 2 can be split in n - 1 places; its score is the *minimum* over the splits,
so "new york city" is a phrase only if both "new | york city" and
"new york | city" are strong collocations. ``measure="pmi"`` uses the
unnormalised log ratio instead (threshold in nats).

Counting is vectorised with NumPy: words become integer ids, k-grams get ids
level by level (a k-gram is a frequent (k-1)-gram followed by a word, so only
frequent prefixes are extended: apriori pruning), and ``np.unique`` counts them.
Words without a letter or digit (punctuation) never take part in a phrase, and no
n-gram crosses a sentence boundary. A phrase neither starts nor ends with a stop
word (the linker's English / Chinese lists; inside one is fine: "bank of america"),
so that phrases are chunk-like units ("new york city", not "was a french").

Words are produced by :func:`english_words` (the whitespace/punctuation split of
BERT's basic tokenizer, lower-cased, so they match the wordpiece word units of
:mod:`kept.masking.units`) or, for Chinese, by jieba -- the same PMI learner then
merges consecutive jieba words into phrases.

A :class:`PhraseTable` is saved as JSON and applied by :meth:`PhraseTable.match`:
left-to-right longest match over word sequences, vectorised over a whole batch of
sentences (only overlapping candidate matches are resolved in Python).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PHRASES_FORMAT = "kept-phrases"
PHRASES_VERSION = 1
_WORD = re.compile(r"[^\W_]+|[^\w\s]|_")


def english_words(text: str, lowercase: bool = True) -> list[str]:
    """Words of ``text`` as BERT's basic tokenizer splits them: runs of letters/digits, each punctuation mark alone."""
    words = _WORD.findall(text)
    return [w.lower() for w in words] if lowercase else words


def chinese_words(text: str) -> list[str]:
    """jieba words of ``text`` (HMM on, whitespace dropped)."""
    import jieba

    return [w for w in jieba.lcut(text) if not w.isspace()]


def _is_content(words: np.ndarray) -> np.ndarray:
    """bool [V]: which words may be part of a phrase (those with a letter or digit)."""
    return np.fromiter((any(c.isalnum() for c in w) for w in words), dtype=bool, count=len(words))


def greedy_non_overlapping(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """bool [k]: spans kept by a left-to-right scan that skips a span overlapping an already kept one.

    starts / ends: int [k] half-open spans sorted by start. A span that overlaps no
    earlier span is always kept (decided vectorised); only chains of overlapping
    spans are resolved by a Python loop over their members.
    """
    k = len(starts)
    keep = np.ones(k, dtype=bool)
    if k < 2:
        return keep
    prev_max_end = np.concatenate([[np.iinfo(np.int64).min], np.maximum.accumulate(ends)[:-1]])  # [k]
    conflict = starts < prev_max_end                                                                # [k]
    for first in np.flatnonzero(conflict & ~np.concatenate([[False], conflict[:-1]])) - 1:
        last = first + 1
        while last < k and conflict[last]:
            last += 1
        free_from = starts[first]
        for i in range(first, last):
            keep[i] = starts[i] >= free_from
            if keep[i]:
                free_from = ends[i]
    return keep


@dataclass
class PhraseTable:
    """Phrases (word tuples) with their collocation score and corpus count.

    phrases: word tuple -> (score, count).
    lang: "en" (words from :func:`english_words`) or "zh" (jieba words).
    lowercase: whether words were lower-cased when learned (and must be when matched).
    max_len, min_count, threshold, measure: the settings they were learned with.
    """

    phrases: dict[tuple[str, ...], tuple[float, int]] = field(default_factory=dict)
    lang: str = "en"
    lowercase: bool = True
    max_len: int = 3
    min_count: int = 5
    threshold: float = 0.5
    measure: str = "npmi"

    def __post_init__(self) -> None:
        self._index: tuple | None = None

    def __len__(self) -> int:
        return len(self.phrases)

    def __contains__(self, phrase: str | Sequence[str]) -> bool:
        return self._key(phrase) in self.phrases

    def score(self, phrase: str | Sequence[str]) -> float | None:
        """The collocation score of a phrase (words or a space-joined string), None if absent."""
        entry = self.phrases.get(self._key(phrase))
        return None if entry is None else entry[0]

    def _key(self, phrase: str | Sequence[str]) -> tuple[str, ...]:
        words = phrase.split() if isinstance(phrase, str) else list(phrase)
        return tuple(w.lower() for w in words) if self.lowercase else tuple(words)

    def words(self, text: str) -> list[str]:
        """Split a text into words the way this table was learned."""
        words = chinese_words(text) if self.lang == "zh" else english_words(text, lowercase=False)
        return [w.lower() for w in words] if self.lowercase else words

    # -- persistence ---------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the table as JSON (phrases sorted by descending score)."""
        rows = sorted(self.phrases.items(), key=lambda kv: (-kv[1][0], kv[0]))
        data = {"format": PHRASES_FORMAT, "version": PHRASES_VERSION, "lang": self.lang,
                "lowercase": self.lowercase, "max_len": self.max_len, "min_count": self.min_count,
                "threshold": self.threshold, "measure": self.measure,
                "phrases": [[list(words), round(score, 6), count] for words, (score, count) in rows]}
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> PhraseTable:
        """Read a table written by :meth:`save`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != PHRASES_FORMAT or data.get("version") != PHRASES_VERSION:
            raise ValueError(f"{path} is not a {PHRASES_FORMAT} v{PHRASES_VERSION} file")
        phrases = {tuple(words): (float(score), int(count)) for words, score, count in data["phrases"]}
        return cls(phrases, data["lang"], data["lowercase"], data["max_len"], data["min_count"],
                   data["threshold"], data["measure"])

    # -- matching ------------------------------------------------------------------
    def _build_index(self) -> tuple[dict[str, int], int, dict[int, np.ndarray]]:
        """Word -> id over phrase words, the id base, and the sorted int64 keys of the phrases of each length."""
        vocab = {w: i for i, w in enumerate(sorted({w for p in self.phrases for w in p}))}
        base = len(vocab) + 1
        if self.phrases and base ** self.max_len >= 2**63:
            raise ValueError(f"phrase vocabulary too large for max_len={self.max_len}")
        keys: dict[int, list[int]] = {}
        for p in self.phrases:
            key = 0
            for w in p:
                key = key * base + vocab[w] + 1
            keys.setdefault(len(p), []).append(key)
        return vocab, base, {n: np.sort(np.asarray(k, dtype=np.int64)) for n, k in keys.items()}

    def match(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Longest-match phrases in each word sequence.

        sentences: word lists (already lower-cased if the table is).
        Returns one int64 [k, 2] array per sentence of half-open *word* index spans
        [start, end), non-overlapping, found left to right taking the longest phrase
        that starts at each position.
        """
        if self._index is None:
            self._index = self._build_index()
        vocab, base, keys_by_len = self._index
        lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
        bounds = np.concatenate([[0], np.cumsum(lengths)])                     # [S + 1]
        total = int(bounds[-1])
        if total == 0 or not keys_by_len:
            return [np.zeros((0, 2), np.int64) for _ in sentences]
        flat = itertools.chain.from_iterable(sentences)
        ids = np.fromiter(map(vocab.get, flat, itertools.repeat(-1)), dtype=np.int64, count=total)  # [T] -1: in no phrase
        sentence = np.repeat(np.arange(len(lengths)), lengths)                 # [T]
        pad = max(keys_by_len)
        ids_p = np.concatenate([ids, np.full(pad, -1)])                         # [T + pad]
        sent_p = np.concatenate([sentence, np.full(pad, -1)])
        longest = np.zeros(total, dtype=np.int64)                              # [T] longest phrase starting here
        for n in sorted(keys_by_len, reverse=True):
            key = np.zeros(total, dtype=np.int64)
            ok = np.ones(total, dtype=bool)
            for j in range(n):
                part = ids_p[j : j + total]
                ok &= (part >= 0) & (sent_p[j : j + total] == sentence)
                key = key * base + part + 1
            table = keys_by_len[n]
            pos = np.minimum(np.searchsorted(table, key), len(table) - 1)
            hit = ok & (table[pos] == key) & (longest == 0)
            longest[hit] = n
        starts = np.flatnonzero(longest)                                       # [k] sorted
        ends = starts + longest[starts]
        keep = greedy_non_overlapping(starts, ends)
        starts, ends = starts[keep], ends[keep]
        owner = sentence[starts]
        cut = np.searchsorted(owner, np.arange(len(lengths) + 1))
        local = np.stack([starts, ends], axis=1) - bounds[owner][:, None]      # [k, 2]
        return [local[cut[i] : cut[i + 1]] for i in range(len(lengths))]


def _ngram_ids(prev: np.ndarray, words: np.ndarray, n: int, vocab_size: int,
               min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids of the frequent n-grams starting at each position, from those of the (n-1)-grams.

    prev: int64 [T] id of the frequent (n-1)-gram at each position (-1 if none);
    words: int64 [T] word ids (-1 for punctuation and sentence separators).
    Returns (ids [T], counts [G]): -1 where the n-gram is infrequent or invalid.
    """
    total = len(words)
    nxt = np.concatenate([words[n - 1 :], np.full(n - 1, -1)])                   # [T] last word of the n-gram
    valid = (prev >= 0) & (nxt >= 0)
    key = np.where(valid, prev * vocab_size + nxt, -1)
    uniq, inverse, counts = np.unique(key[valid], return_inverse=True, return_counts=True)
    frequent = counts >= min_count
    new_id = np.where(frequent, np.cumsum(frequent) - 1, -1)                     # [U]
    ids = np.full(total, -1, dtype=np.int64)
    ids[valid] = new_id[inverse.reshape(-1)]
    return ids, counts[frequent]


def learn_phrases(texts_or_word_lists: Iterable[str | Sequence[str]], min_count: int = 5,
                  threshold: float = 0.5, max_len: int = 3, lang: str = "en", lowercase: bool = True,
                  measure: str = "npmi", stop_words: frozenset[str] | None = None) -> PhraseTable:
    """Learn collocation phrases from a corpus.

    texts_or_word_lists: sentences, each a text (split by :func:`english_words`, or
        jieba for ``lang="zh"``) or an already split list of words.
    min_count: least number of occurrences of a phrase (default 5).
    threshold: least score of every split of a phrase (default 0.5 for NPMI).
    max_len: longest phrase in words (default 3).
    lang: "en" or "zh" -- how texts are split into words (default "en").
    lowercase: lower-case English words (default True; matches uncased BERT).
    measure: "npmi" (default, in [-1, 1]) or "pmi" (natural log ratio).
    stop_words: words a phrase may not start or end with (default None: the built-in
        English or Chinese list of :mod:`kept.kg.linking.textnorm`; an empty set allows all).
    """
    if measure not in ("npmi", "pmi"):
        raise ValueError(f"measure must be 'npmi' or 'pmi', not {measure!r}")
    if max_len < 2:
        raise ValueError("max_len must be at least 2")
    table = PhraseTable({}, lang, lowercase, max_len, min_count, threshold, measure)
    if stop_words is None:
        from kept.kg.linking.textnorm import EN_STOP_WORDS, ZH_STOP_WORDS

        stop_words = ZH_STOP_WORDS if lang == "zh" else EN_STOP_WORDS
    stop = frozenset(stop_words)
    flat: list[str] = []
    n_sentences = 0
    for item in texts_or_word_lists:
        words = table.words(item) if isinstance(item, str) else [w.lower() if lowercase else w for w in item]
        flat.extend(words)
        flat.append("")                                                       # sentence separator
        n_sentences += 1
    n_words = float(len(flat) - n_sentences)
    if n_words == 0:
        return table
    index = {w: i for i, w in enumerate(dict.fromkeys(flat))}                 # word -> id, first seen first
    vocab = np.asarray(list(index), dtype=object)                             # [V]
    inverse = np.fromiter(map(index.__getitem__, flat), dtype=np.int64, count=len(flat))  # [T] word id per position
    content = _is_content(vocab)                                              # [V] ("" is not content)
    words = np.where(content[inverse], inverse, -1).astype(np.int64)          # [T]
    counts = [np.zeros(0, np.int64), np.bincount(inverse, minlength=len(vocab))]   # by n: count per n-gram id
    gram_ids = [np.zeros(0, np.int64), words]                                 # by n: n-gram id at each position
    first_pos = [np.zeros(0, np.int64), np.zeros(0, np.int64)]                 # by n: one position per n-gram id
    for n in range(2, max_len + 1):
        ids, n_counts = _ngram_ids(gram_ids[n - 1], words, n, len(vocab), min_count)
        if len(n_counts) == 0:
            break
        uniq, first = np.unique(ids, return_index=True)
        gram_ids.append(ids)
        counts.append(n_counts)
        first_pos.append(first[uniq >= 0])
    log_p = [np.log(c / n_words) if n else c for n, c in enumerate(counts)]   # log p(n-gram) = log count / N
    for n in range(2, len(gram_ids)):
        pos = first_pos[n]                                                    # [G]
        log_joint = log_p[n][gram_ids[n][pos]]                                # [G]
        score = np.full(len(pos), np.inf)
        for k in range(1, n):                                                 # split after k words
            left = log_p[k][gram_ids[k][pos]]
            right = log_p[n - k][gram_ids[n - k][pos + k]]
            pmi = log_joint - left - right
            score = np.minimum(score, pmi / -log_joint if measure == "npmi" else pmi)
        for g in np.flatnonzero(score >= threshold):                          # only the phrases kept
            words_g = tuple(vocab[inverse[pos[g] : pos[g] + n]].tolist())
            if words_g[0] not in stop and words_g[-1] not in stop:
                table.phrases[words_g] = (float(score[g]), int(counts[n][g]))
    return table
