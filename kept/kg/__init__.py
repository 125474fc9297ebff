"""Knowledge graphs: readers for real dumps, the on-disk store, graph adapters."""

from kept.kg.store import KGStore, open_store

__all__ = ["KGStore", "open_store"]
