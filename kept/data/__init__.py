"""Linked examples and corpora: the record type, text -> LinkedExample, corpus building, tokenizers.

Public names (imported on first use): ``LinkedExample``, ``LinkedCorpus``, ``write_corpus``
(:mod:`kept.data.examples`); ``attach_entities``, ``link_example`` (:mod:`kept.data.linked`);
``CorpusOptions``, ``build_linked_corpus`` (:mod:`kept.data.build`); ``load_tokenizer``
(:mod:`kept.data.tokenizer`).
"""

from kept._lazy import lazy_exports

_EXPORTS = {
    "LinkedExample": "examples",
    "LinkedCorpus": "examples",
    "write_corpus": "examples",
    "attach_entities": "linked",
    "link_example": "linked",
    "CorpusOptions": "build",
    "build_linked_corpus": "build",
    "load_tokenizer": "tokenizer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
