"""Open and query a KG store (the directory written by :mod:`kept.kg.build`).

Opening is cheap whatever the size: ``meta.json`` is parsed, the NumPy arrays
are memory-mapped (nothing is read until used) and ``names.sqlite`` is opened
lazily, once per process (so forked data-loader workers each get their own
connection). Ids are dense: entities ``0..num_entities-1``, relations
``0..num_relations-1``; the row of an id in any array is the id itself.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kept.kg.store_check import (
    FULL_CHECK_BYTES,
    StoreError,
    check_indptr,
    check_names,
    check_range,
    check_triples,
    load_array,
    read_meta,
)
from kept.kg.store_writer import FORMAT_VERSION

__all__ = ["EntityInfo", "KGStore", "StoreError", "open_store"]


@dataclass(frozen=True)
class EntityInfo:
    """Everything the store knows by name about one entity."""

    id: int
    key: str
    label: str | None
    lang: str | None
    description: str | None
    aliases: tuple[str, ...]


class KGStore:
    """A KG store opened read-only. Use :func:`open_store`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta: dict = read_meta(self.path, FORMAT_VERSION)
        counts = self.meta["counts"]
        n_entities, n_triples = counts["entities"], counts["triples"]
        #: int32 [num_triples, 3] (head, relation, tail), sorted and unique
        self.triples: np.ndarray = load_array(self.path / "triples.npy", 2, 3, rows=n_triples)
        #: int64 [num_entities + 1]: out-edges of e are triples[out_indptr[e]:out_indptr[e + 1]]
        self.out_indptr: np.ndarray = load_array(self.path / "out_indptr.npy", 1, rows=n_entities + 1)
        #: int64 [num_entities + 1] and int [num_triples]: rows of the in-edges of each entity
        self.in_indptr: np.ndarray = load_array(self.path / "in_indptr.npy", 1, rows=n_entities + 1)
        self.in_index: np.ndarray = load_array(self.path / "in_index.npy", 1, rows=n_triples)
        small = self.triples.nbytes <= FULL_CHECK_BYTES
        self._check_arrays(full=small)
        check_names(self.path / "names.sqlite", n_entities, self.num_relations, deep=False)
        self._db: sqlite3.Connection | None = None
        self._db_pid = -1

    def _check_arrays(self, full: bool) -> None:
        """CSR ends (always) and (``full``) every id in range and offsets non-decreasing."""
        for name in ("out_indptr", "in_indptr"):
            check_indptr(self.path / f"{name}.npy", getattr(self, name), self.num_triples, full)
        if full:
            check_triples(self.path / "triples.npy", self.triples, self.num_entities, self.num_relations)
            bad = check_range(self.in_index, self.num_triples)
            if bad:
                raise StoreError(f"{self.path / 'in_index.npy'}: rows span {bad}, outside 0..{self.num_triples - 1}; "
                                 "the store is corrupt, rebuild it")

    def validate(self) -> None:
        """Every check, whatever the size: ids, CSR offsets, splits, ``PRAGMA quick_check`` (``kept kg info``)."""
        self._check_arrays(full=True)
        for name in self.split_names:
            check_triples(self.path / "splits" / f"{name}.npy", self.split(name), self.num_entities,
                          self.num_relations)
        check_names(self.path / "names.sqlite", self.num_entities, self.num_relations, deep=True)

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def num_entities(self) -> int:
        return len(self.out_indptr) - 1

    @property
    def num_relations(self) -> int:
        return int(self.meta["counts"]["relations"])

    @property
    def num_triples(self) -> int:
        return len(self.triples)

    def __repr__(self) -> str:
        return (f"KGStore({str(self.path)!r}, entities={self.num_entities}, relations={self.num_relations}, "
                f"triples={self.num_triples})")

    # ---- names (SQLite) ----------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        """Read-only connection to names.sqlite, one per process."""
        if self._db is None or self._db_pid != os.getpid():
            uri = f"file:{(self.path / 'names.sqlite').resolve()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._db_pid = os.getpid()
        return self._db

    def entity_id(self, key: str) -> int:
        """Id of the entity with this source key (QID, IRI, name); KeyError if absent."""
        row = self.db.execute("SELECT id FROM entities WHERE key=?", (key,)).fetchone()
        if row is None:
            raise KeyError(f"no entity with key {key!r} in {self.path}")
        return row[0]

    def entity_key(self, entity_id: int) -> str:
        return self._entity_row(entity_id)[0]

    def label(self, entity_id: int) -> str | None:
        """Preferred label of an entity (None when the source gave none)."""
        return self._entity_row(entity_id)[1]

    def _entity_row(self, entity_id: int) -> tuple:
        row = self.db.execute("SELECT key, label, lang, description FROM entities WHERE id=?",
                              (int(entity_id),)).fetchone()
        if row is None:
            raise KeyError(f"entity id {entity_id} out of range 0..{self.num_entities - 1}")
        return row

    def aliases(self, entity_id: int) -> list[str]:
        """Other names of an entity (the label excluded), in source order."""
        rows = self.db.execute("SELECT alias FROM aliases WHERE entity_id=? ORDER BY rowid", (int(entity_id),))
        return [r[0] for r in rows]

    def entity(self, ref: int | str) -> EntityInfo:
        """All names of an entity, by id or by key."""
        entity_id = self.entity_id(ref) if isinstance(ref, str) else int(ref)
        key, label, lang, description = self._entity_row(entity_id)
        return EntityInfo(entity_id, key, label, lang, description, tuple(self.aliases(entity_id)))

    def lookup(self, name: str, ignore_case: bool = False) -> list[int]:
        """Entity ids whose label or an alias is exactly ``name`` (label matches first)."""
        collate = " COLLATE NOCASE" if ignore_case else ""
        rows = self.db.execute(
            f"SELECT id FROM entities WHERE label=?{collate} UNION ALL "
            f"SELECT entity_id FROM aliases WHERE alias=?{collate}", (name, name))
        return list(dict.fromkeys(r[0] for r in rows))

    def iter_names(self) -> Iterator[tuple[int, str]]:
        """Every (entity id, name) pair: labels then aliases. Feeds the entity linker."""
        yield from self.db.execute("SELECT id, label FROM entities WHERE label IS NOT NULL")
        yield from self.db.execute("SELECT entity_id, alias FROM aliases")

    def relation_id(self, key: str) -> int:
        row = self.db.execute("SELECT id FROM relations WHERE key=?", (key,)).fetchone()
        if row is None:
            raise KeyError(f"no relation with key {key!r} in {self.path}")
        return row[0]

    def relation_key(self, relation_id: int) -> str:
        return self._relation_row(relation_id)[0]

    def relation_label(self, relation_id: int) -> str:
        """Label of a relation, falling back to its key."""
        key, label = self._relation_row(relation_id)
        return label or key

    def _relation_row(self, relation_id: int) -> tuple:
        row = self.db.execute("SELECT key, label FROM relations WHERE id=?", (int(relation_id),)).fetchone()
        if row is None:
            raise KeyError(f"relation id {relation_id} out of range 0..{self.num_relations - 1}")
        return row

    def attributes(self, entity_id: int) -> list[tuple[str, str]]:
        """Literal-valued facts (name, value) of an entity."""
        rows = self.db.execute("SELECT name, value FROM attributes WHERE entity_id=? ORDER BY rowid",
                               (int(entity_id),))
        return [tuple(r) for r in rows]

    # ---- graph (NumPy) -----------------------------------------------------------------------
    def neighbours(self, entity_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Out-edges of an entity: (relation ids, tail ids), sorted by relation then tail."""
        a, b = self.out_indptr[entity_id], self.out_indptr[entity_id + 1]
        return self.triples[a:b, 1], self.triples[a:b, 2]

    def in_neighbours(self, entity_id: int) -> tuple[np.ndarray, np.ndarray]:
        """In-edges of an entity: (relation ids, head ids)."""
        rows = self.in_index[self.in_indptr[entity_id] : self.in_indptr[entity_id + 1]]
        return self.triples[rows, 1], self.triples[rows, 0]

    def degree(self) -> np.ndarray:
        """int64 [num_entities]: number of triples an entity takes part in (in + out)."""
        return np.diff(self.out_indptr) + np.diff(self.in_indptr)

    @property
    def split_names(self) -> list[str]:
        """Splits the source had (e.g. ['test', 'train', 'valid']); empty when none."""
        return sorted(self.meta["counts"].get("splits", {}))

    def split(self, name: str) -> np.ndarray:
        """int32 [n, 3] triples of one split, memory-mapped."""
        if name not in self.split_names:
            have = ", ".join(self.split_names) or "none"
            raise KeyError(f"{self.path} has no split {name!r} (splits: {have})")
        return load_array(self.path / "splits" / f"{name}.npy", 2, 3, rows=self.meta["counts"]["splits"][name])

    def entity_vectors(self, name: str = "transe") -> np.ndarray:
        """float32 [num_entities, dim] embeddings/NAME/entity.npy (row = entity id), memory-mapped."""
        return self._vectors(name, "entity")

    def relation_vectors(self, name: str = "transe") -> np.ndarray:
        """float32 [num_relations, dim] embeddings/NAME/relation.npy (row = relation id), memory-mapped."""
        return self._vectors(name, "relation")

    def _vectors(self, name: str, kind: str) -> np.ndarray:
        path = self.path / "embeddings" / name / f"{kind}.npy"
        if not path.exists():
            raise KeyError(f"{self.path} has no {name!r} embeddings ({path} missing); "
                           f"train them with `kept kg embed {self.path}`")
        rows = self.num_entities if kind == "entity" else self.num_relations
        return load_array(path, 2, kind="f", rows=rows)

    def summary(self) -> dict:
        """Counts and sources, as printed by ``kept kg info``."""
        sources = [{"path": s.get("path", "?"), "format": s.get("format", "?")}
                   for s in self.meta.get("sources", []) if isinstance(s, dict)]
        return {"path": str(self.path), **self.meta["counts"], "sources": sources,
                "created": self.meta.get("created"), "format_version": self.meta["format_version"]}


def open_store(path: str | Path, validate: bool = False) -> KGStore:
    """Open the KG store at ``path`` (a directory made by ``kept kg build``); StoreError when it is
    not a store or is corrupt. Opening checks shapes, dtypes, counts, the SQLite header and tables,
    and every id when the triples take at most 256 MB; ``validate=True`` checks everything whatever
    the size, ``PRAGMA quick_check`` included."""
    store = KGStore(path)
    if validate:
        store.validate()
    return store
