"""Masking units: basic units, whole words and phrases over wordpieces.

Baidu ERNIE 1.0 masks *units*, not tokens. kept has four kinds, all stored on a
:class:`~kept.data.examples.LinkedExample` as half-open token spans ``[start, end)``:

* **basic units**: one per token -- a wordpiece (English) or a character (Chinese:
  the Chinese BERT vocabulary gives one token per CJK character). Masking needs no
  spans for them (:func:`basic_spans` gives them explicitly).
* **words** (``word_spans``), a partition of the tokens:
  English -- a wordpiece followed by its ``##`` continuation pieces
  (:func:`wordpiece_word_spans`, one table lookup per token, vectorised);
  Chinese -- jieba words aligned to the character tokens through their character
  offsets (:func:`jieba_word_spans`).
* **phrases** (``phrase_spans``), runs of two or more whole words:
  spaCy noun chunks when a trained pipeline with a parser is given by name or path
  (:func:`load_spacy_parser`); otherwise corpus collocations learned by
  :func:`kept.masking.phrases.learn_phrases` (PMI over words; for Chinese over jieba
  words) and applied by longest match.
* **entities** (``entity_spans``) come from the entity linker; masking consumes them.

Token-to-character alignment uses one rule everywhere: a token belongs to the
character span that contains its *first* character (``np.searchsorted`` on the
token start offsets). A token that straddles a jieba word boundary therefore
joins the word it starts in, and words always partition the tokens.
:class:`UnitSegmenter` tokenises texts and fills words and phrases in one call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kept.data.examples import LinkedExample
from kept.masking.phrases import PhraseTable, greedy_non_overlapping


def basic_spans(num_tokens: int) -> np.ndarray:
    """int32 [n, 2]: one unit per token, ``[[0, 1], [1, 2], ...]``."""
    starts = np.arange(num_tokens, dtype=np.int32)
    return np.stack([starts, starts + 1], axis=1)


def continuation_table(tokenizer: Any) -> np.ndarray:
    """bool [V]: which vocabulary ids are ``##`` continuation wordpieces."""
    vocab = tokenizer.get_vocab()
    table = np.zeros(max(len(tokenizer), max(vocab.values()) + 1), dtype=bool)
    ids = [i for piece, i in vocab.items() if piece.startswith("##")]
    table[ids] = True
    return table


def wordpiece_word_spans(input_ids: np.ndarray, is_continuation: np.ndarray) -> np.ndarray:
    """int32 [k, 2]: whole words of a wordpiece sequence.

    input_ids: int [n] wordpiece ids (no special tokens).
    is_continuation: bool [V] from :func:`continuation_table`.
    A word starts at every token that is not a ``##`` piece (and at token 0).
    """
    n = len(input_ids)
    if n == 0:
        return np.zeros((0, 2), np.int32)
    starts_word = ~is_continuation[np.asarray(input_ids)]             # [n]
    starts_word[0] = True
    starts = np.flatnonzero(starts_word).astype(np.int32)             # [k]
    ends = np.append(starts[1:], n).astype(np.int32)
    return np.stack([starts, ends], axis=1)


def batch_wordpiece_word_spans(input_ids: Sequence[np.ndarray], is_continuation: np.ndarray) -> list[np.ndarray]:
    """:func:`wordpiece_word_spans` of many sequences in one vectorised pass."""
    lengths = np.fromiter((len(ids) for ids in input_ids), dtype=np.int64, count=len(input_ids))   # [S]
    bounds = np.concatenate([[0], np.cumsum(lengths)])                                           # [S + 1]
    flat = np.concatenate([np.asarray(ids, dtype=np.int64) for ids in input_ids] + [np.zeros(0, np.int64)])
    starts_word = ~is_continuation[flat]                                                         # [T]
    starts_word[bounds[:-1][lengths > 0]] = True
    starts = np.flatnonzero(starts_word)                                                         # [K]
    ends = np.append(starts[1:], len(flat))                      # a sequence's first token ends the last word
    owner = np.searchsorted(bounds, starts, side="right") - 1                                    # [K]
    local = (np.stack([starts, ends], axis=1) - bounds[owner][:, None]).astype(np.int32)         # [K, 2]
    return np.split(local, np.cumsum(np.bincount(owner, minlength=len(lengths)))[:-1])


def char_spans_to_token_spans(char_spans: np.ndarray, offsets: np.ndarray, return_kept: bool = False):
    """int32 [k', 2]: token spans of character spans; empty ones dropped.

    char_spans: int [k, 2] character spans [start, end), sorted and non-overlapping.
    offsets: int [n, 2] character span of each token (sorted by start).
    return_kept: also return the bool [k] mask of the spans that cover a token.
    A token belongs to the span containing its first character.
    """
    char_spans = np.asarray(char_spans, dtype=np.int64).reshape(-1, 2)
    token_starts = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)[:, 0]        # [n]
    first = np.searchsorted(token_starts, char_spans[:, 0], side="left")            # [k]
    end = np.searchsorted(token_starts, char_spans[:, 1], side="left")              # [k]
    keep = first < end
    spans = np.stack([first[keep], end[keep]], axis=1).astype(np.int32)
    return (spans, keep) if return_kept else spans


def jieba_word_spans(text: str, offsets: np.ndarray, jieba_tokenizer: Any = None) -> np.ndarray:
    """int32 [k, 2]: jieba words of ``text`` as token spans (a partition of the tokens).

    text: the text the tokens were cut from.
    offsets: int [n, 2] character span of each token in ``text``.
    jieba_tokenizer: a ``jieba.Tokenizer`` (e.g. with a user dictionary); default ``jieba.dt``.
    Whitespace words cover no token start and disappear.
    """
    import jieba

    tk = jieba_tokenizer or jieba.dt
    chars = np.asarray([(s, e) for _, s, e in tk.tokenize(text)], dtype=np.int64).reshape(-1, 2)
    return char_spans_to_token_spans(chars, offsets)


def word_of_token(word_spans: np.ndarray, num_tokens: int) -> np.ndarray:
    """int64 [n]: index of the word containing each token (word spans must partition the tokens)."""
    return np.searchsorted(np.asarray(word_spans)[:, 0], np.arange(num_tokens), side="right") - 1


def span_words(text: str, offsets: np.ndarray, word_spans: np.ndarray, lowercase: bool = True) -> list[str]:
    """The surface string of each word span (the text between its first and last token)."""
    offsets = np.asarray(offsets)
    lo, hi = offsets[word_spans[:, 0], 0], offsets[word_spans[:, 1] - 1, 1]
    words = [text[a:b] for a, b in zip(lo.tolist(), hi.tolist())]
    return [w.lower() for w in words] if lowercase else words


def words_to_token_spans(word_spans: np.ndarray, phrase_word_spans: np.ndarray) -> np.ndarray:
    """int32 [k, 2]: token spans of phrases given as word index spans [first word, end word)."""
    phrase_word_spans = np.asarray(phrase_word_spans, dtype=np.int64).reshape(-1, 2)
    starts = word_spans[phrase_word_spans[:, 0], 0]
    ends = word_spans[phrase_word_spans[:, 1] - 1, 1]
    return np.stack([starts, ends], axis=1).astype(np.int32)


def load_spacy_parser(name_or_path: Any) -> Any:
    """A spaCy pipeline that can give noun chunks: loaded by name or path, checked for a parser.

    name_or_path: an installed pipeline name (``"en_core_web_sm"``), a directory, or a
        ``spacy.Language`` already loaded. Nothing is downloaded.
    Raises ValueError with what to do when the pipeline cannot be loaded or has no
    dependency parser (a blank pipeline such as ``spacy.blank("en")`` has none).
    """
    import spacy

    if isinstance(name_or_path, spacy.language.Language):
        nlp, name = name_or_path, f"{name_or_path.lang}_{name_or_path.meta.get('name', 'pipeline')}"
    else:
        name = str(name_or_path)
        try:
            nlp = spacy.load(name_or_path, exclude=["ner", "lemmatizer", "textcat"])
        except OSError as err:
            raise ValueError(
                f"cannot load the spaCy pipeline {name!r}: it is neither an installed package nor a "
                f"pipeline directory. Install a trained pipeline with a parser (python -m spacy download "
                f"en_core_web_sm) and pass its name or path, or leave spacy_model unset to use corpus "
                f"phrases (kept.masking.learn_phrases). ({err})") from err
    if "parser" not in nlp.pipe_names:
        raise ValueError(
            f"the spaCy pipeline {name!r} has no dependency parser (pipes: {nlp.pipe_names or 'none'}), "
            f"so it cannot give noun chunks; a blank pipeline never can. Use a trained pipeline such as "
            f"en_core_web_sm, or leave spacy_model unset to use corpus phrases (kept.masking.learn_phrases).")
    return nlp


def noun_chunk_char_spans(nlp: Any, texts: Sequence[str], batch_size: int = 256) -> list[np.ndarray]:
    """int64 [k, 2] character spans of the noun chunks of each text (``nlp.pipe``)."""
    out = []
    for doc in nlp.pipe(texts, batch_size=batch_size):
        try:
            chunks = [(c.start_char, c.end_char) for c in doc.noun_chunks]
        except (NotImplementedError, ValueError) as err:
            raise ValueError(f"the spaCy pipeline gives no noun chunks for language {nlp.lang!r}: {err}") from err
        out.append(np.asarray(chunks, dtype=np.int64).reshape(-1, 2))
    return out


def snap_to_words(token_spans: np.ndarray, word_spans: np.ndarray, num_tokens: int,
                  min_words: int = 2) -> np.ndarray:
    """int32 [k', 2]: spans widened to whole words, keeping those of ``min_words``+ words, non-overlapping."""
    token_spans = np.asarray(token_spans, dtype=np.int64).reshape(-1, 2)
    if len(token_spans) == 0 or len(word_spans) == 0:
        return np.zeros((0, 2), np.int32)
    owner = word_of_token(word_spans, num_tokens)                     # [n]
    first_word = owner[token_spans[:, 0]]
    end_word = owner[token_spans[:, 1] - 1] + 1
    keep = end_word - first_word >= min_words
    first_word, end_word = first_word[keep], end_word[keep]
    keep = greedy_non_overlapping(first_word, end_word)
    return words_to_token_spans(word_spans, np.stack([first_word[keep], end_word[keep]], axis=1))


class UnitSegmenter:
    """Tokenise texts and fill word and phrase units of :class:`LinkedExample` records.

    tokenizer: a Hugging Face BERT tokenizer (fast, for offsets).
    lang: "en" (wordpiece words) or "zh" (jieba words); default "en".
    phrases: a :class:`PhraseTable` or the path of one saved as JSON; used when no
        spaCy pipeline is given (default None: no phrases unless ``spacy_model``).
    spacy_model: name, path or loaded ``spacy.Language`` of a trained pipeline with a
        parser; its noun chunks (of two or more words) become the phrases (English).
    jieba_tokenizer: a ``jieba.Tokenizer`` for Chinese words (default ``jieba.dt``).
    max_tokens: truncate texts to this many wordpieces (default None: no limit).
    """

    def __init__(self, tokenizer: Any, lang: str = "en", phrases: PhraseTable | str | Path | None = None,
                 spacy_model: Any = None, jieba_tokenizer: Any = None, max_tokens: int | None = None):
        if lang not in ("en", "zh"):
            raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")
        self.tokenizer, self.lang, self.max_tokens = tokenizer, lang, max_tokens
        self.jieba_tokenizer = jieba_tokenizer
        self.phrases = PhraseTable.load(phrases) if isinstance(phrases, (str, Path)) else phrases
        self.nlp = load_spacy_parser(spacy_model) if spacy_model is not None else None
        self.is_continuation = continuation_table(tokenizer) if lang == "en" else None

    def __call__(self, texts: str | Sequence[str]) -> list[LinkedExample]:
        """LinkedExamples (ids, offsets, words, phrases) of one text or many."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True,
                             truncation=self.max_tokens is not None, max_length=self.max_tokens)
        ids = [np.asarray(i, np.int32) for i in enc["input_ids"]]
        offsets = [np.asarray(o, np.int32).reshape(-1, 2) for o in enc["offset_mapping"]]
        words, phrases = self.units(texts, ids, offsets)
        return [LinkedExample(*fields, offsets=o, word_spans=w, phrase_spans=p)
                for *fields, o, w, p in zip(texts, ids, offsets, words, phrases)]

    def add_units(self, examples: Sequence[LinkedExample]) -> list[LinkedExample]:
        """Copies of ``examples`` with ``word_spans`` and ``phrase_spans`` filled (needs ids and offsets)."""
        words, phrases = self.units([ex.text for ex in examples], [ex.input_ids for ex in examples],
                                    [ex.offsets for ex in examples])
        return [dataclasses.replace(ex, word_spans=w, phrase_spans=p) for ex, w, p in zip(examples, words, phrases)]

    def units(self, texts: Sequence[str], input_ids: Sequence[np.ndarray],
              offsets: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``(word spans, phrase spans)``, int32 [k, 2] each, of tokenised texts."""
        if self.lang == "en":
            words = batch_wordpiece_word_spans(input_ids, self.is_continuation)
        else:
            words = [jieba_word_spans(t, o, self.jieba_tokenizer) for t, o in zip(texts, offsets)]
        if self.nlp is not None:
            chunks = noun_chunk_char_spans(self.nlp, texts)
            phrases = [snap_to_words(char_spans_to_token_spans(c, o), w, len(o))
                       for c, o, w in zip(chunks, offsets, words)]
        elif self.phrases is not None:
            lower = self.phrases.lowercase
            sentences = [span_words(t, o, w, lower) for t, o, w in zip(texts, offsets, words)]
            phrases = [words_to_token_spans(w, m) for w, m in zip(words, self.phrases.match(sentences))]
        else:
            phrases = [np.zeros((0, 2), np.int32) for _ in texts]
        return words, phrases
