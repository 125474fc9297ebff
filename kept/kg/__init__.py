"""Knowledge graphs: readers for real dumps, the on-disk store, graph adapters.

``KGStore`` and ``open_store`` (:mod:`kept.kg.store`) are imported here; ``BuildOptions``
and ``build_store`` (:mod:`kept.kg.build`) on first use. TransE is :mod:`kept.kg.transe`,
entity linking :mod:`kept.kg.linking`, graph adapters :mod:`kept.kg.graph`.
"""

from kept._lazy import lazy_exports
from kept.kg.store import KGStore, open_store

__all__ = ["BuildOptions", "KGStore", "build_store", "open_store"]
__getattr__, __dir__ = lazy_exports(__name__, {"BuildOptions": "build", "build_store": "build"})
