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
store at the output path is left untouched. ``overwrite`` replaces only an existing
kept store, never another path or one holding an input; see :mod:`kept.kg.outputs`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

import kept
from kept.kg import store_writer
from kept.kg.ingest import BuildOptions, Ingest
from kept.kg.outputs import check_output, is_kept_dir, prepare_output, publish
from kept.kg.sources import ReadContext, get_reader, guess_format
from kept.kg.sources.errors import BadLines, SourceError
from kept.kg.sources.inputs import InputFile


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
    check_output(out, overwrite=options.overwrite, is_ours=is_store, what="kept store",
                 inputs=[Path(p) for p, _ in inputs])
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
    tmp = prepare_output(out, overwrite=options.overwrite, is_ours=is_store, what="kept store",
                         inputs=[p for p, _, _ in resolved])
    try:
        (tmp / "_work").mkdir()
        bad = BadLines(limit=options.max_bad_lines)
        ingest = Ingest(tmp / "_work", options)
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
        publish(tmp, out, overwrite=options.overwrite, is_ours=is_store, what="kept store")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildReport(out, meta, time.perf_counter() - start, bad.examples)



def is_store(path: Path) -> bool:
    """Whether ``path`` is a kept store (a directory whose ``meta.json`` has its format and counts):
    the only thing ``--overwrite`` may replace."""
    return is_kept_dir(path, "format_version", "counts")
