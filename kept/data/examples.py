"""Linked examples: the one record type every pretraining method consumes.

A :class:`LinkedExample` is a text tokenised into wordpieces (no special tokens:
collators add ``[CLS]``/``[SEP]``) with three kinds of spans over those
wordpieces, all half-open ``[start, end)`` token index pairs:

* ``word_spans``: whole words (jieba words for Chinese, the wordpieces of one
  whitespace/punctuation word for English) -- Baidu-ERNIE whole-word units;
* ``phrase_spans``: multi-word phrases (spaCy noun chunks, corpus collocations,
  or jieba phrases) -- Baidu-ERNIE phrase units;
* ``entity_spans``: mentions linked to the KG store, with ``entity_ids`` (store
  ids) and ``entity_scores`` -- Baidu-ERNIE entity units, K-BERT branch points,
  ERNIE (Tsinghua) alignments (on the mention's first wordpiece), ERNIE 3.0 pairs.

A :class:`LinkedCorpus` stores many examples as concatenated NumPy arrays with
CSR index pointers, memory-mapped on open, so a data loader reads example ``i``
without loading the corpus.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kept.errors import InputError

#: ragged fields: name -> (dtype, trailing shape)
RAGGED: dict[str, tuple[type, tuple[int, ...]]] = {
    "input_ids": (np.int32, ()),
    "offsets": (np.int32, (2,)),
    "word_spans": (np.int32, (2,)),
    "phrase_spans": (np.int32, (2,)),
    "entity_spans": (np.int32, (2,)),
    "entity_ids": (np.int64, ()),
    "entity_scores": (np.float32, ()),
}
#: which index pointer each ragged field uses
_INDPTR = {"input_ids": "tokens", "offsets": "tokens", "word_spans": "words", "phrase_spans": "phrases",
           "entity_spans": "entities", "entity_ids": "entities", "entity_scores": "entities"}
CORPUS_FORMAT_VERSION = 1


def _empty(name: str) -> np.ndarray:
    dtype, shape = RAGGED[name]
    return np.zeros((0, *shape), dtype=dtype)


@dataclass
class LinkedExample:
    """One tokenised, segmented and entity-linked text.

    text: the original text; offsets index into it.
    input_ids: int32 [n] wordpiece ids (no [CLS]/[SEP]).
    offsets: int32 [n, 2] character span of each wordpiece in ``text``.
    word_spans / phrase_spans / entity_spans: int32 [k, 2] token spans [start, end).
    entity_ids: int64 [e] store entity id of each entity span.
    entity_scores: float32 [e] linker score of each entity span.
    """

    text: str
    input_ids: np.ndarray
    offsets: np.ndarray = field(default_factory=lambda: _empty("offsets"))
    word_spans: np.ndarray = field(default_factory=lambda: _empty("word_spans"))
    phrase_spans: np.ndarray = field(default_factory=lambda: _empty("phrase_spans"))
    entity_spans: np.ndarray = field(default_factory=lambda: _empty("entity_spans"))
    entity_ids: np.ndarray = field(default_factory=lambda: _empty("entity_ids"))
    entity_scores: np.ndarray = field(default_factory=lambda: _empty("entity_scores"))

    def __post_init__(self) -> None:
        for name, (dtype, shape) in RAGGED.items():
            value = np.asarray(getattr(self, name), dtype=dtype)
            if value.size == 0:
                value = value.reshape(0, *shape)
            setattr(self, name, value)
        n = len(self.input_ids)
        if len(self.offsets) not in (0, n):
            raise ValueError(f"offsets has {len(self.offsets)} rows for {n} tokens")
        if not len(self.entity_spans) == len(self.entity_ids) == len(self.entity_scores):
            raise ValueError("entity_spans, entity_ids and entity_scores must have the same length")
        for name in ("word_spans", "phrase_spans", "entity_spans"):
            spans = getattr(self, name)
            if len(spans) and (spans.min() < 0 or spans.max() > n or np.any(spans[:, 0] >= spans[:, 1])):
                raise ValueError(f"{name} must be non-empty [start, end) spans within 0..{n}")

    def __len__(self) -> int:
        return len(self.input_ids)


def write_corpus(examples: Iterable[LinkedExample], out: str | Path, meta: dict | None = None) -> int:
    """Write examples as a :class:`LinkedCorpus` directory, atomically; returns the count.

    Arrays are appended to raw files as examples stream in (memory is bounded by
    one example), then wrapped as ``.npy`` at the end.
    """
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        files = {name: open(tmp / f"{name}.bin", "wb") for name in RAGGED}
        counts: dict[str, list[int]] = {"tokens": [0], "words": [0], "phrases": [0], "entities": [0]}
        with open(tmp / "texts.jsonl", "w", encoding="utf-8") as texts:
            for ex in examples:
                for name in RAGGED:
                    arr = getattr(ex, name)
                    if name == "offsets" and len(arr) != len(ex):  # offsets unknown: zeros keep rows aligned
                        arr = np.zeros((len(ex), 2), np.int32)
                    files[name].write(np.ascontiguousarray(arr).tobytes())
                for key, arr in (("tokens", ex.input_ids), ("words", ex.word_spans),
                                 ("phrases", ex.phrase_spans), ("entities", ex.entity_ids)):
                    counts[key].append(counts[key][-1] + len(arr))
                texts.write(json.dumps(ex.text, ensure_ascii=False) + "\n")
        for f in files.values():
            f.close()
        for name, (dtype, shape) in RAGGED.items():
            raw = np.fromfile(tmp / f"{name}.bin", dtype=dtype).reshape(-1, *shape)
            np.save(tmp / f"{name}.npy", raw)
            (tmp / f"{name}.bin").unlink()
        for key, values in counts.items():
            np.save(tmp / f"{key}_indptr.npy", np.asarray(values, dtype=np.int64))
        n = len(counts["tokens"]) - 1
        info = {"format_version": CORPUS_FORMAT_VERSION, "examples": n, "tokens": counts["tokens"][-1],
                "entities": counts["entities"][-1], **(meta or {})}
        (tmp / "meta.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return n


class LinkedCorpus:
    """Examples written by :func:`write_corpus`, memory-mapped. ``corpus[i]`` is a LinkedExample."""

    def __init__(self, path: str | Path, vocab_size: int | None = None):
        """Open ``path``; InputError when it is not a complete, consistent corpus, or (``vocab_size``
        given) when a token id is outside the vocabulary the model will be built with."""
        self.path = Path(path)
        if not (self.path / "meta.json").is_file():
            raise FileNotFoundError(f"{self.path} is not a linked corpus (no meta.json)")
        try:
            self.meta = json.loads((self.path / "meta.json").read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{self.path / 'meta.json'}: not valid JSON text ({exc}); rebuild the corpus") from None
        if not isinstance(self.meta, dict):
            raise InputError(f"{self.path / 'meta.json'}: not a JSON object; rebuild the corpus")
        if self.meta.get("format_version") != CORPUS_FORMAT_VERSION:
            raise ValueError(f"{self.path}: linked corpus format {self.meta.get('format_version')}, "
                             f"expected {CORPUS_FORMAT_VERSION}; rebuild it")
        self.indptr = {key: self._load(f"{key}_indptr", 1, np.integer) for key in ("tokens", "words", "phrases", "entities")}
        self.arrays = {}
        for name, (dtype, shape) in RAGGED.items():
            array = self._load(name, 1 + len(shape), dtype)
            ptr = self.indptr[_INDPTR[name]]
            if len(ptr) != len(self.indptr["tokens"]) or int(ptr[-1]) != len(array) or int(ptr[0]) != 0:
                raise InputError(f"{self.path / (name + '.npy')}: {len(array):,} rows, its index pointer "
                                 f"{_INDPTR[name]}_indptr.npy ends at {int(ptr[-1]):,}; rebuild the corpus")
            self.arrays[name] = array
        if not (self.path / "texts.jsonl").is_file():
            raise InputError(f"{self.path / 'texts.jsonl'}: missing; the corpus is incomplete, rebuild it")
        if vocab_size is not None:
            self.check_vocab(vocab_size)
        self._texts: list[str] | None = None

    def _load(self, name: str, ndim: int, dtype) -> np.ndarray:
        path = self.path / f"{name}.npy"
        if not path.is_file():
            raise InputError(f"{path}: missing; the corpus is incomplete, rebuild it")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path}: not a readable .npy array ({exc}); rebuild the corpus") from None
        if array.ndim != ndim or not np.issubdtype(array.dtype, dtype) or (ndim == 1 and name.endswith("indptr")
                                                                          and len(array) == 0):
            raise InputError(f"{path}: {array.dtype} array of shape {list(array.shape)}, not what kept writes; "
                             "rebuild the corpus")
        return array

    def check_vocab(self, vocab_size: int) -> None:
        """InputError when a token id is outside 0..vocab_size-1: the corpus was tokenised with
        another vocabulary (found here, not as an IndexError deep inside training)."""
        ids = self.arrays["input_ids"]
        top = max((int(ids[i : i + (1 << 22)].max()) for i in range(0, len(ids), 1 << 22)), default=-1)
        low = min((int(ids[i : i + (1 << 22)].min()) for i in range(0, len(ids), 1 << 22)), default=0)
        if top >= vocab_size or low < 0:
            raise InputError(f"{self.path}: token ids span {low}..{top} but the vocabulary has {vocab_size} "
                             "tokens; the corpus was built with another vocabulary (rebuild it, or pass its "
                             "vocabulary)")

    def __len__(self) -> int:
        return len(self.indptr["tokens"]) - 1

    def text(self, i: int) -> str:
        if self._texts is None:
            with open(self.path / "texts.jsonl", encoding="utf-8") as f:
                self._texts = [json.loads(line) for line in f]
        return self._texts[i]

    def field(self, name: str, i: int) -> np.ndarray:
        """One ragged field of example ``i`` (a copy, safe to modify)."""
        ptr = self.indptr[_INDPTR[name]]
        return np.array(self.arrays[name][ptr[i] : ptr[i + 1]])

    def __getitem__(self, i: int) -> LinkedExample:
        if not 0 <= i < len(self):
            raise IndexError(f"example {i} out of range 0..{len(self) - 1}")
        return LinkedExample(self.text(i), **{name: self.field(name, i) for name in RAGGED})
