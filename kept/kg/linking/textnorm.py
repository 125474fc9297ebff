"""Text normalisation shared by the entity linker's parts: word characters, case folding,
stop words and the hashed content tokens used for context overlap.

* **Word characters** are Python's ``\\w`` (letters, digits, underscore) except the scripts
  written without spaces (Han, kana, Hangul, CJK radicals), which the linker matches
  character by character.
* **Content tokens** are lower-cased runs of two or more word characters that are not
  stop words, plus the character bigrams of Han/kana/Hangul runs (a single character
  when the run has one). They are found and hashed with NumPy, without a Python loop
  over tokens: a token's id is a 64-bit polynomial hash of its code points folded to
  32 bits, computed from prefix sums (stable across processes, unlike ``hash``).
"""

from __future__ import annotations

import numpy as np

#: A small English stop-word list: function words that are also labels/aliases in real KGs.
EN_STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just may me might
more most must my myself no nor not now of off on once only or other our ours ourselves out over own
same shall she should so some such than that the their theirs them themselves then there these they
this those through to too under until up upon us very was we were what when where which while who whom
why will with would yet you your yours yourself yourselves
""".split())
#: Chinese function words of two or more characters (single characters are below the default length).
ZH_STOP_WORDS = frozenset("""
我们 你们 他们 她们 它们 自己 这个 那个 这些 那些 这样 那样 这里 那里 什么 怎么 为什么 因为 所以 但是 可是
而且 如果 虽然 还是 或者 已经 就是 不是 没有 可以 一个 一些 一样 一直 一下 之后 之前 然后 时候 现在 其中
非常 比较 还有 只是 只有 而是 不过 然而 以及 并且 对于 关于 由于 通过 根据 如此 这么 那么 大家 的话 的时候
""".split())

NON_SPACE_SCRIPTS = [(0x2E80, 0x2FDF), (0x3040, 0x30FF), (0x3100, 0x312F), (0x3190, 0x31FF), (0x3400, 0x4DBF),
                     (0x4E00, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF), (0x20000, 0x3134F)]
_TABLES: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def char_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is_word, is_space, is_cjk), each bool [0x110000] by code point, computed once per process."""
    global _TABLES
    if _TABLES is None:
        limit = 0x30000  # above: Han extension G (set below), unassigned, private use, tags
        chars = [chr(c) for c in range(limit)]
        word = np.zeros(0x110000, dtype=bool)
        space = np.zeros(0x110000, dtype=bool)
        word[:limit] = [c.isalnum() or c == "_" for c in chars]
        space[:limit] = [c.isspace() for c in chars]
        cjk = np.zeros(0x110000, dtype=bool)
        for lo, hi in NON_SPACE_SCRIPTS:
            cjk[lo : hi + 1] = True
        word[cjk] = False
        _TABLES = word, space, cjk
    return _TABLES


def fold_case(text: str) -> str:
    """``text.lower()`` one character for one character (characters that would expand stay as they are)."""
    low = text.lower()
    if len(low) == len(text):  # lowering never shrinks, so equal length means 1:1 everywhere
        return low
    return "".join(low1 if len(low1 := c.lower()) == 1 else c for c in text)


def codes_of(text: str) -> np.ndarray:
    """uint32 [n] code points of ``text``."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


_PRIME = 0x100000001B3  # odd, so invertible modulo 2**64
_POWERS = np.ones(1, dtype=np.uint64)
_INVERSE_POWERS = np.ones(1, dtype=np.uint64)


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(p**i, p**-i) modulo 2**64 for i < n, uint64, grown on demand."""
    global _POWERS, _INVERSE_POWERS
    if len(_POWERS) < n:
        size = max(n, 2 * len(_POWERS), 1 << 16)
        with np.errstate(over="ignore"):
            one = np.ones(1, dtype=np.uint64)
            _POWERS = np.concatenate([one, np.cumprod(np.full(size - 1, _PRIME, dtype=np.uint64))])
            inverse = pow(_PRIME, -1, 1 << 64)
            _INVERSE_POWERS = np.concatenate([one, np.cumprod(np.full(size - 1, inverse, dtype=np.uint64))])
    return _POWERS[:n], _INVERSE_POWERS[:n]


def span_ids(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """uint32 [k]: ids of the substrings ``codes[starts[i]:ends[i]]`` (polynomial hash, folded)."""
    power, inverse = _powers(len(codes) + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
        np.cumsum(codes.astype(np.uint64) * power[: len(codes)], out=prefix[1:])
        h = (prefix[ends] - prefix[starts]) * inverse[starts]               # sum c[s + j] p**j
    return ((h ^ (h >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def token_id(token: str) -> int:
    """The id :func:`content_ids` gives ``token`` (already lower-cased)."""
    return int(span_ids(codes_of(token), np.array([0]), np.array([len(token)]))[0])


_STOP_IDS: np.ndarray | None = None


def content_ids(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Content tokens of ``text``: (uint32 [k] token ids, int64 [k] start offsets), duplicates kept."""
    global _STOP_IDS
    if _STOP_IDS is None:
        _STOP_IDS = np.unique([token_id(w) for w in EN_STOP_WORDS]).astype(np.uint32)
    word, _, cjk = char_tables()
    codes = codes_of(fold_case(text))
    is_word = word[codes]                                                   # [n]
    change = np.flatnonzero(np.concatenate(([False], is_word)) != np.concatenate((is_word, [False])))
    w_start, w_end = change[0::2], change[1::2]                             # runs of word characters
    long_enough = w_end - w_start >= 2
    w_start, w_end = w_start[long_enough], w_end[long_enough]
    w_ids = span_ids(codes, w_start, w_end)
    content = ~np.isin(w_ids, _STOP_IDS)
    is_cjk = cjk[codes]
    left = np.concatenate(([False], is_cjk[:-1]))                           # CJK character before
    right = np.concatenate((is_cjk[1:], [False]))                           # CJK character after
    c_start = np.flatnonzero(is_cjk & (right | ~left))                      # bigram starts and lone chars
    c_end = c_start + 1 + right[c_start]
    starts = np.concatenate([w_start[content], c_start])
    ids = np.concatenate([w_ids[content], span_ids(codes, c_start, c_end)])
    return ids, starts.astype(np.int64)
