"""Text -> LinkedExample with entities: linked character spans aligned to wordpieces (the mention's first wordpiece carries the entity, as ERNIE-Tsinghua expects)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kept.data.examples import LinkedExample
from kept.kg.linking.linker import EntityLinker
from kept.masking.units import UnitSegmenter, char_spans_to_token_spans


def attach_entities(example: LinkedExample, spans: np.ndarray, entity_ids: np.ndarray,
                    scores: np.ndarray) -> LinkedExample:
    """``example`` with linked mentions (character ``spans`` int [M, 2]) as entity token spans.

    A token belongs to the mention containing its first character (see
    :func:`kept.masking.units.char_spans_to_token_spans`), so an entity span starts on
    the mention's first wordpiece, where ERNIE (Tsinghua) puts the entity. Mentions
    that cover no kept token (past a truncation) are dropped.
    """
    token_spans, kept = char_spans_to_token_spans(spans, example.offsets, return_kept=True)
    example.entity_spans = token_spans
    example.entity_ids = np.asarray(entity_ids)[kept].astype(np.int64)
    example.entity_scores = np.asarray(scores)[kept].astype(np.float32)
    return example


def link_example(text: str, tokenizer: Any, linker: EntityLinker, language: str | None = None) -> LinkedExample:
    """Tokenise, segment into words and entity-link one text.

    text: the text.
    tokenizer: a Hugging Face fast tokenizer (``return_offsets_mapping`` support), e.g.
        ``BertTokenizer(vocab=...)``; special tokens are not added.
    linker: the entity linker.
    language: "en" or "zh" word units (default: the linker's language).
    phrase_spans stay empty (:class:`kept.masking.units.UnitSegmenter` with a phrase
    table fills them; ``kept data build`` does both for a whole corpus).
    """
    example = UnitSegmenter(tokenizer, lang=language or linker.config.language)(text)[0]
    return attach_entities(example, *linker.link_spans(text))
