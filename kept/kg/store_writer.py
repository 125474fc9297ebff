"""Phases 2 and 3 of a build: sort/deduplicate spilled triples, filter, write the store files.

Store layout (a directory; see :mod:`kept.kg.store` for reading it):

- ``triples.npy``      int32 [n, 3] (head, relation, tail), sorted, unique
- ``out_indptr.npy``   int64 [entities + 1]: out-edges of e are rows out_indptr[e]:out_indptr[e+1]
- ``in_indptr.npy``    int64 [entities + 1] and ``in_index.npy`` (row numbers into
                       triples, grouped by tail): the in-edges of each entity
- ``splits/NAME.npy``  int32 [n, 3] per split (train/valid/test) when the source had splits
- ``names.sqlite``     entities(id, key, label, lang, description), aliases,
                       relations, relation_aliases, attributes
- ``meta.json``        format version, sources with checksums, counts, build options
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kept.kg.sources.records import SPLIT_NAMES

if TYPE_CHECKING:
    from kept.kg.ingest import BuildOptions, Ingest

FORMAT_VERSION = 1


def _read_rows(path: Path, block: int) -> Iterator[np.ndarray]:
    """Yield int32 [<=block, 4] row blocks of a spill file."""
    data = np.memmap(path, dtype=np.int32, mode="r").reshape(-1, 4)
    for i in range(0, len(data), block):
        yield np.array(data[i : i + block])


def _bucket_bounds(head_counts: np.ndarray, block: int) -> np.ndarray:
    """Head-id boundaries so each bucket holds about ``block`` rows (a single hub may exceed it)."""
    cum = np.cumsum(head_counts)
    targets = np.arange(block, cum[-1] if len(cum) else 0, block)
    bounds = np.searchsorted(cum, targets, side="left") + 1
    return np.unique(np.concatenate([bounds, [len(head_counts)]]))


def _sorted_rows(rows: np.ndarray) -> np.ndarray:
    """Rows (h, r, t, split) sorted by (h, r, t, split)."""
    order = np.lexsort((rows[:, 3], rows[:, 2], rows[:, 1], rows[:, 0]))
    return rows[order]


def _first_of_runs(hrt: np.ndarray) -> np.ndarray:
    keep = np.ones(len(hrt), dtype=bool)
    keep[1:] = np.any(hrt[1:] != hrt[:-1], axis=1)
    return keep


def _sort_dedup(ingest: Ingest, work: Path, n_entities: int, block: int) -> dict:
    """Phase 2: partition by head range, sort and deduplicate each bucket.

    Writes ``work/main.bin`` (unique (h, r, t) over all splits) and
    ``work/split{code}.bin`` per split code present. Returns degrees and counts.
    """
    head_counts = np.zeros(n_entities, dtype=np.int64)
    for chunk in ingest.chunks:
        for rows in _read_rows(chunk, block):
            head_counts += np.bincount(rows[:, 0], minlength=n_entities)
    bounds = _bucket_bounds(head_counts, block)
    if len(bounds) == 1:  # everything is one bucket: no partitioning pass
        buckets = [ingest.chunks]
    else:
        buckets = [[work / f"bucket{i:05d}.bin"] for i in range(len(bounds))]
        handles = [open(b[0], "wb") for b in buckets]
        for chunk in ingest.chunks:
            for rows in _read_rows(chunk, block):
                which = np.searchsorted(bounds, rows[:, 0], side="right")
                order = np.argsort(which, kind="stable")
                rows, which = rows[order], which[order]
                cuts = np.searchsorted(which, np.arange(len(bounds) + 1))
                for b in range(len(bounds)):
                    if cuts[b] < cuts[b + 1]:
                        handles[b].write(rows[cuts[b] : cuts[b + 1]].tobytes())
            chunk.unlink()
        for h in handles:
            h.close()

    out_deg = np.zeros(n_entities, dtype=np.int64)
    in_deg = np.zeros(n_entities, dtype=np.int64)
    n_unique, split_files = 0, {}
    with open(work / "main.bin", "wb") as main:
        for files in buckets:
            rows = np.concatenate([np.fromfile(p, dtype=np.int32).reshape(-1, 4) for p in files] or
                                  [np.zeros((0, 4), np.int32)])
            for p in files:
                p.unlink()
            rows = _sorted_rows(rows)
            hrt = rows[:, :3]
            unique = np.ascontiguousarray(hrt[_first_of_runs(hrt)])
            main.write(unique.tobytes())
            n_unique += len(unique)
            out_deg += np.bincount(unique[:, 0], minlength=n_entities)
            in_deg += np.bincount(unique[:, 2], minlength=n_entities)
            for code in np.unique(rows[:, 3]).tolist():
                if code == 0:
                    continue
                part = hrt[rows[:, 3] == code]
                if code not in split_files:
                    split_files[code] = open(work / f"split{code}.bin", "wb")
                split_files[code].write(np.ascontiguousarray(part[_first_of_runs(part)]).tobytes())
    for f in split_files.values():
        f.close()
    return {"out_deg": out_deg, "in_deg": in_deg, "unique": n_unique, "split_codes": sorted(split_files)}


def _keep_mask(ingest: Ingest, options: BuildOptions, degree: np.ndarray) -> np.ndarray:
    keep = np.ones(len(degree), dtype=bool)
    if options.drop_unlabelled:
        labelled = np.zeros(len(degree), dtype=bool)
        ids = [r[0] for r in ingest.db.execute("SELECT DISTINCT raw_id FROM names WHERE is_rel=0 AND kind='L'")]
        labelled[np.asarray(ids, dtype=np.int64)] = True
        keep &= labelled
    if options.min_degree > 0:
        keep &= degree >= options.min_degree
    if options.max_entities is not None and keep.sum() > options.max_entities:
        candidates = np.flatnonzero(keep)
        order = np.argsort(-degree[candidates], kind="stable")[: options.max_entities]
        keep[:] = False
        keep[candidates[order]] = True
    return keep


def _remap_file(src: Path, dst: Path, remap: np.ndarray, block: int) -> np.ndarray:
    """Write ``dst`` (.npy, int32 [n, 3]) from ``src`` rows with entity ids remapped.

    Rows with a dropped endpoint (remap == -1) are removed. The remap is monotone,
    so sorted input stays sorted. Two passes: count, then write.
    """
    data = np.memmap(src, dtype=np.int32, mode="r").reshape(-1, 3) if src.stat().st_size else np.zeros((0, 3), np.int32)
    n = 0
    for i in range(0, len(data), block):
        part = data[i : i + block]
        n += int(np.count_nonzero((remap[part[:, 0]] >= 0) & (remap[part[:, 2]] >= 0)))
    out = np.lib.format.open_memmap(dst, mode="w+", dtype=np.int32, shape=(n, 3))
    at = 0
    for i in range(0, len(data), block):
        part = np.array(data[i : i + block])
        part[:, 0], part[:, 2] = remap[part[:, 0]], remap[part[:, 2]]
        part = part[(part[:, 0] >= 0) & (part[:, 2] >= 0)]
        out[at : at + len(part)] = part
        at += len(part)
    out.flush()
    return out


def _write_csr(root: Path, triples: np.ndarray, n_entities: int, block: int) -> None:
    """Out-CSR (rows are already sorted by head) and in-CSR by a chunked counting sort."""
    out_deg = np.zeros(n_entities, dtype=np.int64)
    in_deg = np.zeros(n_entities, dtype=np.int64)
    for i in range(0, len(triples), block):
        part = triples[i : i + block]
        out_deg += np.bincount(part[:, 0], minlength=n_entities)
        in_deg += np.bincount(part[:, 2], minlength=n_entities)
    np.save(root / "out_indptr.npy", np.concatenate([[0], np.cumsum(out_deg)]))
    in_indptr = np.concatenate([[0], np.cumsum(in_deg)])
    np.save(root / "in_indptr.npy", in_indptr)
    index_dtype = np.int32 if len(triples) < 2**31 else np.int64
    in_index = np.lib.format.open_memmap(root / "in_index.npy", mode="w+", dtype=index_dtype, shape=(len(triples),))
    cursor = in_indptr[:-1].copy()
    for i in range(0, len(triples), block):
        tails = np.asarray(triples[i : i + block, 2])
        order = np.argsort(tails, kind="stable")
        sorted_tails = tails[order]
        starts = np.flatnonzero(np.r_[True, sorted_tails[1:] != sorted_tails[:-1]])
        run_start = np.repeat(starts, np.diff(np.r_[starts, len(sorted_tails)]))
        rank = np.arange(len(sorted_tails)) - run_start
        in_index[cursor[sorted_tails] + rank] = i + order
        cursor += np.bincount(sorted_tails, minlength=n_entities)
    in_index.flush()


_SCHEMA = """
CREATE TABLE entities(id INTEGER PRIMARY KEY, key TEXT NOT NULL, label TEXT, lang TEXT, description TEXT);
CREATE TABLE aliases(entity_id INTEGER NOT NULL, alias TEXT NOT NULL, lang TEXT);
CREATE TABLE relations(id INTEGER PRIMARY KEY, key TEXT NOT NULL, label TEXT, description TEXT);
CREATE TABLE relation_aliases(relation_id INTEGER NOT NULL, alias TEXT NOT NULL, lang TEXT);
CREATE TABLE attributes(entity_id INTEGER NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL);
"""
_INDEXES = """
CREATE UNIQUE INDEX entities_key ON entities(key);
CREATE UNIQUE INDEX relations_key ON relations(key);
CREATE INDEX aliases_alias ON aliases(alias);
CREATE INDEX aliases_alias_nocase ON aliases(alias COLLATE NOCASE);
CREATE INDEX aliases_entity ON aliases(entity_id);
CREATE INDEX relation_aliases_relation ON relation_aliases(relation_id);
CREATE INDEX attributes_entity ON attributes(entity_id);
"""


def _write_names(root: Path, ingest: Ingest, remap: np.ndarray) -> None:
    """names.sqlite: best label/description per id (preferred language, then first seen), the rest as aliases."""
    scratch = ingest.db
    scratch.executescript(
        """CREATE INDEX names_id ON names(is_rel, raw_id);
        CREATE TABLE best AS SELECT is_rel, raw_id, kind, text, lang, MIN(rank * 4294967296 + rowid) AS k
            FROM names WHERE kind IN ('L', 'D') GROUP BY is_rel, raw_id, kind;
        CREATE INDEX best_id ON best(is_rel, raw_id, kind);
        CREATE TABLE ids(is_rel INTEGER, raw_id INTEGER, new_id INTEGER, key TEXT, PRIMARY KEY(is_rel, raw_id));"""
    )
    kept = np.flatnonzero(remap >= 0)
    keys = list(ingest.entity_ids)
    scratch.executemany("INSERT INTO ids VALUES (0,?,?,?)",
                        ((raw, new, keys[raw]) for raw, new in zip(kept.tolist(), remap[kept].tolist())))
    scratch.executemany("INSERT INTO ids VALUES (1,?,?,?)", ((i, i, k) for k, i in ingest.relation_ids.items()))
    scratch.commit()
    db_path = root / "names.sqlite"
    scratch.execute("ATTACH DATABASE ? AS store", (str(db_path),))
    scratch.executescript(
        "PRAGMA store.journal_mode=OFF;"
        + _SCHEMA.replace("CREATE TABLE ", "CREATE TABLE store.")
        + """
        INSERT INTO store.entities SELECT i.new_id, i.key, l.text, l.lang, d.text FROM ids i
            LEFT JOIN best l ON l.is_rel=0 AND l.raw_id=i.raw_id AND l.kind='L'
            LEFT JOIN best d ON d.is_rel=0 AND d.raw_id=i.raw_id AND d.kind='D'
            WHERE i.is_rel=0 ORDER BY i.new_id;
        INSERT INTO store.relations SELECT i.new_id, i.key, l.text, d.text FROM ids i
            LEFT JOIN best l ON l.is_rel=1 AND l.raw_id=i.raw_id AND l.kind='L'
            LEFT JOIN best d ON d.is_rel=1 AND d.raw_id=i.raw_id AND d.kind='D'
            WHERE i.is_rel=1 ORDER BY i.new_id;
        INSERT INTO store.aliases SELECT i.new_id, n.text, MIN(n.lang) FROM names n
            JOIN ids i ON i.is_rel=0 AND i.raw_id=n.raw_id
            LEFT JOIN best l ON l.is_rel=0 AND l.raw_id=n.raw_id AND l.kind='L'
            WHERE n.is_rel=0 AND n.kind IN ('L','A') AND n.text IS NOT l.text
            GROUP BY i.new_id, n.text ORDER BY i.new_id, MIN(n.rowid);
        INSERT INTO store.relation_aliases SELECT i.new_id, n.text, MIN(n.lang) FROM names n
            JOIN ids i ON i.is_rel=1 AND i.raw_id=n.raw_id
            LEFT JOIN best l ON l.is_rel=1 AND l.raw_id=n.raw_id AND l.kind='L'
            WHERE n.is_rel=1 AND n.kind IN ('L','A') AND n.text IS NOT l.text
            GROUP BY i.new_id, n.text ORDER BY i.new_id, MIN(n.rowid);
        INSERT INTO store.attributes SELECT DISTINCT i.new_id, a.name, a.value FROM attrs a
            JOIN ids i ON i.is_rel=0 AND i.raw_id=a.raw_id ORDER BY i.new_id;
        """
        + _INDEXES.replace("CREATE INDEX ", "CREATE INDEX store.")
        .replace("CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX store.")
    )
    scratch.commit()
    scratch.execute("DETACH DATABASE store")


def write_store(root: Path, ingest: Ingest, options: BuildOptions) -> dict:
    """Phases 2 and 3 into ``root``; returns the counts for meta.json."""
    work = root / "_work"
    block = options.chunk_triples
    n_raw = len(ingest.entity_ids)
    stats = _sort_dedup(ingest, work, n_raw, block)
    keep = _keep_mask(ingest, options, stats["out_deg"] + stats["in_deg"])
    remap = np.full(n_raw, -1, dtype=np.int64)
    remap[keep] = np.arange(int(keep.sum()))
    n_entities = int(keep.sum())

    triples = _remap_file(work / "main.bin", root / "triples.npy", remap, block)
    _write_csr(root, triples, n_entities, block)
    splits = {}
    if stats["split_codes"]:
        (root / "splits").mkdir()
        for code in stats["split_codes"]:
            name = SPLIT_NAMES[code]
            splits[name] = len(_remap_file(work / f"split{code}.bin", root / "splits" / f"{name}.npy", remap, block))
    _write_names(root, ingest, remap)
    db = sqlite3.connect(root / "names.sqlite")
    n_aliases = db.execute("SELECT COUNT(*) FROM aliases").fetchone()[0]
    n_attrs = db.execute("SELECT COUNT(*) FROM attributes").fetchone()[0]
    n_labelled = db.execute("SELECT COUNT(*) FROM entities WHERE label IS NOT NULL").fetchone()[0]
    db.close()
    return {
        "entities": n_entities,
        "entities_labelled": n_labelled,
        "entities_dropped": n_raw - n_entities,
        "relations": len(ingest.relation_ids),
        "triples": len(triples),
        "triples_read": ingest.raw_triples,
        "duplicate_triples_removed": ingest.raw_triples - stats["unique"],
        "triples_dropped_with_entities": stats["unique"] - len(triples),
        "aliases": n_aliases,
        "attributes": n_attrs,
        "splits": splits,
    }
