"""Entity linking: an alias automaton over the store's names, disambiguation and ``kept link``.

Public names (imported on first use):

* :mod:`kept.kg.linking.linker`: ``EntityLinker``, ``LinkerConfig``, ``Mention``, ``index_cache_dir``
* :mod:`kept.kg.linking.alias_index`: ``AliasIndex``, ``IndexOptions``
* :mod:`kept.kg.linking.disambiguation`: ``Disambiguator``, ``DisambiguationConfig``
"""

from kept._lazy import lazy_exports

_EXPORTS = {
    "EntityLinker": "linker",
    "LinkerConfig": "linker",
    "Mention": "linker",
    "index_cache_dir": "linker",
    "AliasIndex": "alias_index",
    "IndexOptions": "alias_index",
    "Disambiguator": "disambiguation",
    "DisambiguationConfig": "disambiguation",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
