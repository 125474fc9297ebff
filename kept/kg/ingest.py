"""The first pass of a store build: options, and the ingest that interns keys and spills triples to disk in chunks."""

from __future__ import annotations

import sqlite3
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from kept.kg.sources import ReaderOptions
from kept.kg.sources.records import Attribute, Entity, Relation, Triple

# Name kinds in the scratch database.
LABEL, ALIAS, DESCRIPTION = "L", "A", "D"


@dataclass
class BuildOptions:
    """What to keep and how to read.

    reader: options passed to every reader (languages, ranks, properties, ...).
    min_degree: drop entities with fewer triples (in + out, after deduplication);
        one pass, not iterated to a fixed point. Default 0 keeps all.
    max_entities: keep only the N entities of highest degree (ties: first seen).
    drop_unlabelled: drop entities no record gave a label (e.g. Wikidata items
        outside a partial dump that are only the target of a claim). Default False.
    max_bad_lines: malformed lines skipped (and reported) before the build fails.
    chunk_triples: triples held in memory before spilling to disk (default 4M:
        64 MB of rows); it also bounds the sort phase, which peaks at about 5x the
        rows' bytes (~350 MB at the default; measured in docs/benchmarks.md).
    overwrite: replace an existing store at the output path (only once the new
        one is complete).
    progress: show a progress bar (on a terminal).
    """

    reader: ReaderOptions = field(default_factory=ReaderOptions)
    min_degree: int = 0
    max_entities: int | None = None
    drop_unlabelled: bool = False
    max_bad_lines: int = 0
    chunk_triples: int = 1 << 22
    overwrite: bool = False
    progress: bool = True


class Ingest:
    """Phase 1: ids for keys, spilled triple chunks, names in a scratch SQLite."""

    def __init__(self, work: Path, options: BuildOptions):
        self.work = work
        self.options = options
        self.entity_ids: dict[str, int] = {}
        self.relation_ids: dict[str, int] = {}
        self.rows = array("i")
        self.chunks: list[Path] = []
        self.raw_triples = 0
        self.lang_rank = {lang: i for i, lang in enumerate(options.reader.languages)}
        self.db = sqlite3.connect(work / "scratch.sqlite")
        self.db.executescript(
            """PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
            CREATE TABLE names(raw_id INTEGER, is_rel INTEGER, kind TEXT, text TEXT, lang TEXT, rank INTEGER);
            CREATE TABLE attrs(raw_id INTEGER, name TEXT, value TEXT);"""
        )
        self.names: list[tuple] = []
        self.attrs: list[tuple] = []

    def _entity(self, key: str) -> int:
        i = self.entity_ids.get(key)
        if i is None:
            i = self.entity_ids[key] = len(self.entity_ids)
        return i

    def _relation(self, key: str) -> int:
        i = self.relation_ids.get(key)
        if i is None:
            i = self.relation_ids[key] = len(self.relation_ids)
        return i

    def _rank(self, lang: str | None) -> int:
        return self.lang_rank.get(lang, len(self.lang_rank) + (lang is not None))

    def _names(self, raw_id: int, is_rel: int, rec: Entity | Relation, lang: str | None) -> None:
        add = self.names.append
        if rec.label:
            add((raw_id, is_rel, LABEL, rec.label, lang, self._rank(lang)))
        for alias, alias_lang in rec.aliases:
            if alias:
                add((raw_id, is_rel, ALIAS, alias, alias_lang, self._rank(alias_lang)))
        if rec.description:
            add((raw_id, is_rel, DESCRIPTION, rec.description, lang, self._rank(lang)))
        if len(self.names) >= 50_000:
            self._flush_names()

    def _flush_names(self) -> None:
        self.db.executemany("INSERT INTO names VALUES (?,?,?,?,?,?)", self.names)
        self.db.executemany("INSERT INTO attrs VALUES (?,?,?)", self.attrs)
        self.names.clear()
        self.attrs.clear()

    def _spill(self) -> None:
        if not self.rows:
            return
        path = self.work / f"chunk{len(self.chunks):05d}.bin"
        with open(path, "wb") as f:
            self.rows.tofile(f)
        self.chunks.append(path)
        self.raw_triples += len(self.rows) // 4
        self.rows = array("i")

    def consume(self, records, on_progress) -> None:
        """Take every record of one input; ``on_progress()`` is called every 8192 records.

        Readers may also yield lists of records (one per source line, say), which
        saves a generator step per record on the hot path.
        """
        props = self.options.reader.properties
        chunk_len = 4 * self.options.chunk_triples
        rows, extend = self.rows, self.rows.extend
        entity_ids, relation_ids = self.entity_ids, self.relation_ids
        countdown = 8192
        for item in records:
            batch = item if type(item) is list else (item,)
            for rec in batch:
                if type(rec) is Triple:
                    head, rel, tail, split = rec
                    if props is not None and rel not in props:
                        continue
                    h = entity_ids.get(head)
                    if h is None:
                        h = entity_ids[head] = len(entity_ids)
                    r = relation_ids.get(rel)
                    if r is None:
                        r = relation_ids[rel] = len(relation_ids)
                    t = entity_ids.get(tail)
                    if t is None:
                        t = entity_ids[tail] = len(entity_ids)
                    extend((h, r, t, split))
                    if len(rows) >= chunk_len:
                        self._spill()
                        rows, extend = self.rows, self.rows.extend
                elif type(rec) is Entity:
                    self._names(self._entity(rec.key), 0, rec, rec.lang)
                elif type(rec) is Relation:
                    self._names(self._relation(rec.key), 1, rec, None)
                elif type(rec) is Attribute:
                    self.attrs.append((self._entity(rec.entity), rec.name, rec.value))
                else:
                    raise TypeError(f"reader yielded {type(rec).__name__}, not a record")
            countdown -= len(batch)
            if countdown <= 0:
                countdown = 8192
                on_progress()

    def finish(self) -> None:
        self._spill()
        self._flush_names()
        self.db.commit()
