"""Build a KG store from one or more dumps, in bounded memory, atomically.

The build has three phases:

1. **Ingest** (streaming): readers yield records; keys get integer ids in order of
   first appearance (a ``dict`` key -> id, the only structure that grows with
   the number of entities); triples are buffered as int32 rows ``(h, r, t, split)``
   and spilled to disk every ``chunk_triples`` rows; names go to a scratch SQLite.
2. **Sort and deduplicate** (bounded): spilled rows are partitioned by head-id
   range into buckets of at most ``chunk_triples`` rows, each bucket is sorted by
   ``(h, r, t)`` and deduplicated, and exact degrees are counted.
3. **Filter and write** (bounded): entities are kept by ``min_degree`` /
   ``max_entities`` / ``drop_unlabelled``; the id remap is monotone, so the sorted
   order survives the remap and the final arrays are written chunk by chunk.

Peak memory is O(entities + chunk_triples), never O(triples). Everything is
written into a temporary directory next to the output, which is renamed into
place only when complete; on any error or Ctrl-C it is removed and an existing
store at the output path is left untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from array import array
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

import kept
from kept.kg import store_writer
from kept.kg.sources import ReadContext, ReaderOptions, get_reader, guess_format
from kept.kg.sources.errors import BadLines, SourceError
from kept.kg.sources.inputs import InputFile
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


class _Ingest:
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


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _source_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]


@dataclass
class BuildReport:
    """What a build produced; ``meta`` is the store's ``meta.json``."""

    path: Path
    meta: dict
    seconds: float
    bad_line_examples: list[str]


def build_store(
    inputs: list[tuple[str | Path, str | None]],
    out: str | Path,
    options: BuildOptions | None = None,
) -> BuildReport:
    """Build a store at ``out`` from ``inputs``: ``(path, format or None to guess)`` pairs.

    Raises SourceError for bad input and FileExistsError when ``out`` exists and
    ``options.overwrite`` is False. Nothing is left at ``out`` unless it succeeds.
    """
    options = options or BuildOptions()
    out = Path(out)
    if out.exists() and not options.overwrite:
        raise FileExistsError(f"{out} already exists; choose another path or pass --overwrite")
    if not inputs:
        raise ValueError("no input files given")
    resolved = []
    for path, fmt in inputs:
        path = Path(path)
        if not path.exists():
            raise SourceError(path, None, "no such file or directory")
        fmt = fmt or guess_format(path)
        resolved.append((path, fmt, get_reader(fmt)))

    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "_work").mkdir(parents=True)
    try:
        bad = BadLines(limit=options.max_bad_lines)
        ingest = _Ingest(tmp / "_work", options)
        sources = []
        total = sum(f.stat().st_size for p, _, _ in resolved for f in _source_files(p))
        bar = tqdm(total=total, unit="B", unit_scale=True, desc="reading", disable=not options.progress or None)
        done = 0
        current: list[InputFile] = []

        def on_open(f: InputFile) -> None:
            nonlocal done
            if current:
                done += current[-1].size
            current[:] = [f]

        def on_progress() -> None:
            if current:
                bar.n = done + current[-1].position
                bar.set_postfix(entities=len(ingest.entity_ids), triples=ingest.raw_triples + len(ingest.rows) // 4,
                                refresh=False)
                bar.refresh()

        for path, fmt, reader in resolved:
            ctx = ReadContext(options=options.reader, bad=bad, on_open=on_open)
            ingest.consume(reader(path, ctx), on_progress)
            if current:
                done += current[-1].size
                current.clear()
            sources.append({
                "path": str(path), "format": fmt,
                "files": [{"name": f.name, "bytes": f.stat().st_size, "sha256": _sha256(f)} for f in _source_files(path)],
            })
        bar.n = total
        bar.close()
        ingest.finish()
        if not ingest.entity_ids:
            raise SourceError(resolved[0][0], None, "no entities or triples found in the input")

        counts = store_writer.write_store(tmp, ingest, options)
        meta = {
            "format_version": store_writer.FORMAT_VERSION,
            "kept_version": kept.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sources": sources,
            "counts": counts | {"bad_lines_skipped": bad.count},
            "options": asdict(options) | {"reader": {k: sorted(v) if isinstance(v, frozenset) else v
                                                     for k, v in asdict(options.reader).items()}},
        }
        ingest.db.close()
        shutil.rmtree(tmp / "_work")
        with open(tmp / "meta.json", "w") as f:
            json.dump(meta, f, indent=2, ensure_ascii=False)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildReport(out, meta, time.perf_counter() - start, bad.examples)


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished store into place; an old store is removed only after."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)
