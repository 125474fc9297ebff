"""Masking units and Baidu ERNIE 1.0 knowledge masking.

* :mod:`kept.masking.units`: basic units, whole words (wordpieces / jieba), phrases
  (spaCy noun chunks or corpus collocations) as token spans of LinkedExamples;
* :mod:`kept.masking.phrases`: collocation phrases learned by (N)PMI, saved as JSON;
* :mod:`kept.masking.ernie`: batched unit masking and its collator (levels token /
  basic / word / phrase / entity);
* :mod:`kept.masking.curriculum`: the basic -> phrase -> entity curriculum callback; it
  installs a plain :class:`CurriculumSchedule` that the data module applies per batch
  (the callback is imported on first use, so DataLoader workers never import Lightning).
"""

from typing import Any

from kept.masking.ernie import LEVELS, CurriculumSchedule, MaskingVocab, UnitMaskingCollator, mask_units
from kept.masking.phrases import PhraseTable, english_words, learn_phrases
from kept.masking.units import (
    UnitSegmenter,
    basic_spans,
    char_spans_to_token_spans,
    continuation_table,
    jieba_word_spans,
    load_spacy_parser,
    wordpiece_word_spans,
)

__all__ = [
    "LEVELS", "CurriculumSchedule", "MaskingCurriculum", "MaskingVocab", "PhraseTable", "UnitMaskingCollator", "UnitSegmenter",
    "basic_spans", "char_spans_to_token_spans", "continuation_table", "english_words", "jieba_word_spans",
    "learn_phrases", "load_spacy_parser", "mask_units", "wordpiece_word_spans",
]


def __getattr__(name: str) -> Any:
    if name == "MaskingCurriculum":
        from kept.masking.curriculum import MaskingCurriculum

        return MaskingCurriculum
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
