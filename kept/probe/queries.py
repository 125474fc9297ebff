"""Cloze queries: LAMA facts turned into :class:`~kept.data.examples.LinkedExample` records.

A query is the text of a template (or of an evidence sentence) with the subject filled
in and the object replaced by ``k`` mask tokens, tokenised into wordpieces (no
[CLS]/[SEP]) with word units and entity spans. The subject carries its KG entity, so
knowledge methods (K-BERT branches, ERNIE (Tsinghua) entity embeddings) see it:

* when the fact's ``sub_uri`` is a key of the store (``store.entity_id(key)``), the
  subject's own characters are marked with that entity (score 1.0), whatever the linker says;
* otherwise, and for every other mention in the text, the entity linker decides
  (:meth:`kept.kg.linking.linker.EntityLinker.link_batch`). Mentions overlapping a mask are dropped.

Without a store the queries have no entity spans (plain BERT needs none).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from kept.data.examples import LinkedExample
from kept.data.linked import attach_entities
from kept.kg.linking.linker import EntityLinker, LinkerConfig
from kept.kg.store import KGStore
from kept.masking.units import UnitSegmenter

#: the mask placeholder of LAMA files (templates use [Y]; masked sentences use this)
LAMA_MASK = "[MASK]"


def fill_template(template: str, subject: str, num_masks: int, mask_token: str = LAMA_MASK
                  ) -> tuple[str, tuple[int, int]]:
    """``(text, subject character span)`` of a template with ``[X]`` = subject, ``[Y]`` = masks.

    template: e.g. ``"[X] was born in [Y] ."`` ([X] and [Y] once each).
    subject: the subject label. num_masks: mask tokens for the object, joined by spaces.
    mask_token: the tokenizer's mask token (default ``"[MASK]"``).
    """
    text, span = "", None
    for part in re.split(r"(\[X\]|\[Y\])", template):
        if part == "[X]":
            span = (len(text), len(text) + len(subject))
            text += subject
        elif part == "[Y]":
            text += " ".join([mask_token] * num_masks)
        else:
            text += part
    if span is None:
        raise ValueError(f"template {template!r} has no [X]")
    return text, span


def fill_sentence(sentence: str, num_masks: int, subject: str | None, mask_token: str = LAMA_MASK
                  ) -> tuple[str, tuple[int, int] | None] | None:
    """``(text, subject character span or None)`` of a masked sentence with its one ``[MASK]``
    widened to ``num_masks`` mask tokens; None when the sentence has no or several ``[MASK]``.

    subject: how the subject is written (searched case-insensitively outside the masks; default None).
    """
    if sentence.count(LAMA_MASK) != 1:
        return None
    masks = " ".join([mask_token] * num_masks)
    text = sentence.replace(LAMA_MASK, masks)
    if not subject:
        return text, None
    mask_start = sentence.index(LAMA_MASK)
    mask_end = mask_start + len(masks)
    for match in re.finditer(re.escape(subject), text, flags=re.IGNORECASE):   # spans of the original text
        if match.end() <= mask_start or match.start() >= mask_end:            # not touching the masks
            return text, match.span()
    return text, None


class QueryBuilder:
    """Builds entity-linked queries in batches.

    tokenizer: the model's Hugging Face (fast) BERT tokenizer.
    store: KG store whose entities are marked (default None: no entity spans).
    link: run the entity linker over the queries (default True; only with a store).
    lang: "en" (wordpiece words) or "zh" (jieba words) units and linker language (default "en").
    max_tokens: longest query in wordpieces without [CLS]/[SEP] (default 510); longer ones
        are not built (None in the output).
    linker: a ready linker (default: built from the store, cached in the store directory).
    """

    def __init__(self, tokenizer: Any, store: KGStore | None = None, link: bool = True, lang: str = "en",
                 max_tokens: int = 510, linker: EntityLinker | None = None):
        self.tokenizer, self.store, self.max_tokens = tokenizer, store, max_tokens
        self.segmenter = UnitSegmenter(tokenizer, lang=lang)
        self.linker = linker
        if linker is None and store is not None and link:
            self.linker = EntityLinker.from_store(store, LinkerConfig(language=lang))
        self._entity_of_key: dict[str, int | None] = {}

    @property
    def mask_token(self) -> str:
        return self.tokenizer.mask_token

    def subject_entity(self, key: str | None) -> int | None:
        """Store id of the entity with this key (a Wikidata QID for LAMA T-REx), None if absent."""
        if self.store is None or not key:
            return None
        if key not in self._entity_of_key:
            try:
                self._entity_of_key[key] = int(self.store.entity_id(key))
            except KeyError:
                self._entity_of_key[key] = None
        return self._entity_of_key[key]

    def build(self, texts: list[str], subject_spans: list[tuple[int, int] | None],
              subject_keys: list[str | None]) -> list[LinkedExample | None]:
        """Queries for filled texts (see :func:`fill_template`, :func:`fill_sentence`).

        texts: query texts with mask tokens. subject_spans: character span of the subject in
        each text (None: not located). subject_keys: KG key of each subject (None: unknown).
        Returns one LinkedExample per text, None where the query exceeds ``max_tokens``.
        """
        if not texts:
            return []
        examples = self.segmenter(texts)
        linked = self.linker.link_batch(texts) if self.linker is not None else None
        mask_pattern = re.compile(re.escape(self.mask_token))
        out: list[LinkedExample | None] = []
        for i, example in enumerate(examples):
            if len(example) > self.max_tokens:
                out.append(None)
                continue
            if self.store is None:
                out.append(example)
                continue
            if linked is not None:
                spans, ids, scores = (np.asarray(a) for a in linked[i])
            else:
                spans, ids, scores = np.zeros((0, 2), np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
            blocked = [m.span() for m in mask_pattern.finditer(texts[i])]
            entity = self.subject_entity(subject_keys[i])
            if entity is not None and subject_spans[i] is not None:
                blocked.append(subject_spans[i])
            if blocked and len(spans):
                block = np.asarray(blocked, dtype=np.int64)                                     # [b, 2]
                overlaps = (spans[:, None, 0] < block[None, :, 1]) & (block[None, :, 0] < spans[:, None, 1])
                keep = ~overlaps.any(axis=1)                                                    # [M]
                spans, ids, scores = spans[keep], ids[keep], scores[keep]
            if entity is not None and subject_spans[i] is not None:
                spans = np.concatenate([spans.reshape(-1, 2), np.asarray([subject_spans[i]], np.int64)])
                ids = np.append(ids, entity).astype(np.int64)
                scores = np.append(scores, 1.0).astype(np.float32)
                order = np.argsort(spans[:, 0], kind="stable")
                spans, ids, scores = spans[order], ids[order], scores[order]
            out.append(attach_entities(example, spans, ids, scores))
        return out
