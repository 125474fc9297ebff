"""Saving TransE vectors into a KG store, and the OpenKE / ERNIE (Tsinghua) text format.

In a store, ``embeddings/NAME/`` holds::

    entity.npy     float32 [num_entities, dim], row = store entity id
    relation.npy   float32 [num_relations, dim], row = store relation id
    metrics.json   filtered link prediction on valid and test (see kept.kg.transe.evaluate), epochs, seconds
    config.json    the resolved TransEConfig (+ store path, split source)

The directory is written in a temporary sibling and renamed into place, so readers see
either the old vectors or the new ones. ``embeddings/`` is the only part of a store that
is written after the build.

OpenKE text format (what ERNIE (Tsinghua) reads as its ``kg_embed`` directory):
``entity2id.txt`` / ``relation2id.txt`` = a count line, then ``name<TAB>id`` per line;
``entity2vec.vec`` / ``relation2vec.vec`` = one vector per line (line i = id i),
tab-separated floats.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from kept.kg.store import KGStore


def embeddings_dir(store: KGStore, name: str = "transe") -> Path:
    return store.path / "embeddings" / name


def write_embeddings(store: KGStore, entity: np.ndarray, relation: np.ndarray, metrics: dict, config: dict,
                     name: str = "transe") -> Path:
    """Write ``embeddings/NAME/`` of a store atomically (temp directory + rename); returns it."""
    if entity.shape[0] != store.num_entities or relation.shape[0] != store.num_relations:
        raise ValueError(f"vectors for {entity.shape[0]} entities / {relation.shape[0]} relations, the store "
                         f"has {store.num_entities} / {store.num_relations}")
    final = embeddings_dir(store, name)
    final.parent.mkdir(exist_ok=True)
    tmp = final.parent / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        np.save(tmp / "entity.npy", np.ascontiguousarray(entity, dtype=np.float32))
        np.save(tmp / "relation.npy", np.ascontiguousarray(relation, dtype=np.float32))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        old = final.parent / f".{name}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_json(store: KGStore, filename: str, name: str = "transe") -> dict:
    path = embeddings_dir(store, name) / filename
    if not path.exists():
        raise KeyError(f"{store.path} has no embeddings {name!r} ({path.name} missing); "
                       f"train them with `kept kg embed {store.path}`")
    return json.loads(path.read_text())


def _names(store: KGStore, table: str) -> list[str]:
    rows = store.db.execute(f"SELECT id, key FROM {table} ORDER BY id").fetchall()
    names = [key for _, key in rows]
    if [i for i, _ in rows] != list(range(len(rows))):
        raise ValueError(f"{store.path}: {table} ids are not dense")
    bad = next((n for n in names if "\t" in n or "\n" in n), None)
    if bad is not None:
        raise ValueError(f"{table} key {bad!r} contains a tab or newline: not representable in OpenKE format")
    return names


def _write_ids(path: Path, names: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{len(names)}\n")
        f.writelines(f"{name}\t{i}\n" for i, name in enumerate(names))


def _write_vectors(path: Path, vectors: np.ndarray) -> None:
    # %.9g round-trips float32 exactly
    np.savetxt(path, np.asarray(vectors, dtype=np.float32), fmt="%.9g", delimiter="\t", encoding="utf-8")


def export_openke(store: KGStore, out_dir: str | Path, name: str = "transe") -> Path:
    """Write a store's vectors in OpenKE format (entity2id.txt, relation2id.txt, *.vec) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_ids(out / "entity2id.txt", _names(store, "entities"))
    _write_ids(out / "relation2id.txt", _names(store, "relations"))
    _write_vectors(out / "entity2vec.vec", store.entity_vectors(name))
    _write_vectors(out / "relation2vec.vec", store.relation_vectors(name))
    return out


def _read_ids(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        count = int(f.readline())
        names: list[str | None] = [None] * count
        for line_no, line in enumerate(f, start=2):
            if not line.strip():
                continue
            name, _, ident = line.rstrip("\n").rpartition("\t")
            if not name or not ident.strip().isdigit() or int(ident) >= count:
                raise ValueError(f"{path}:{line_no}: expected 'name<TAB>id' with id < {count}")
            names[int(ident)] = name
    missing = [i for i, n in enumerate(names) if n is None]
    if missing:
        raise ValueError(f"{path}: {len(missing)} ids missing (first: {missing[0]})")
    return names


def _read_vectors(path: Path) -> np.ndarray:
    with open(path, encoding="utf-8") as f:
        rows = [line.strip().split("\t") for line in f if line.strip()]  # tolerate OpenKE's trailing tab
    return np.array(rows, dtype=np.float32)


def load_openke(directory: str | Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Read an OpenKE embedding directory: (entity names, relation names, entity [N, d], relation [R, d])."""
    d = Path(directory)
    entities, relations = _read_ids(d / "entity2id.txt"), _read_ids(d / "relation2id.txt")
    entity, relation = _read_vectors(d / "entity2vec.vec"), _read_vectors(d / "relation2vec.vec")
    if len(entity) != len(entities) or len(relation) != len(relations):
        raise ValueError(f"{d}: {len(entity)} entity / {len(relation)} relation vectors for "
                         f"{len(entities)} / {len(relations)} ids")
    return entities, relations, entity, relation
