"""Reader for OpenKE benchmark directories (FB15k-237, WN18RR, ... in OpenKE's layout).

Files (each may also be ``.gz``/``.bz2``/``.xz``-compressed, e.g. ``train2id.txt.gz``):

* ``entity2id.txt``, ``relation2id.txt`` (required): first line the count, then
  ``name id`` (tab or any whitespace; names contain no spaces).
* ``train2id.txt`` (required), ``valid2id.txt``, ``test2id.txt`` (optional): first line
  the count, then ``head_id tail_id relation_id`` -- note the order h, t, r.
* ``entity2text.txt``, ``relation2text.txt`` (optional): ``name<TAB>surface text``,
  the labels; names not in the id files are ignored.

Records: ``Entity`` in id order first (so the store's first-appearance ids equal the
OpenKE ids), then ``Relation`` in id order, then ``Triple(head, relation, tail, split)``
for train, valid and test. Problems in the id files (ids not exactly 0..n-1, a name
twice, count line wrong) are :class:`SourceError`; a malformed triple line (not three
integers, an id out of range) is a bad line (``ctx.bad``); a count line that does not
match the triples found is a SourceError. Blank lines are skipped everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kept.kg.sources.errors import SourceError
from kept.kg.sources.records import TEST, TRAIN, VALID, Entity, Record, Relation, Triple

if TYPE_CHECKING:
    from kept.kg.sources import ReadContext

SPLIT_FILES = (("train2id.txt", TRAIN, True), ("valid2id.txt", VALID, False), ("test2id.txt", TEST, False))
_COMPRESSIONS = ("", ".gz", ".bz2", ".xz")
_CHUNK_LINES = 1 << 20  # triple lines parsed per numpy batch (bounds memory on big benchmarks)
_MAX_DIGITS = 18  # longer ids could overflow int64; no benchmark comes near


def find_file(directory: Path, name: str, required: bool) -> Path | None:
    """``directory/name`` or its first compressed variant that exists; None (or an error) if none."""
    for suffix in _COMPRESSIONS:
        candidate = directory / (name + suffix)
        if candidate.is_file():
            return candidate
    if required:
        raise SourceError(directory, None, f"OpenKE benchmark without {name} (nor {name}.gz/.bz2/.xz)")
    return None


def _count(path: Path, line: int, fields: list) -> int:
    """The count on a file's first line, or SourceError."""
    if len(fields) != 1 or not fields[0].isdigit():
        raise SourceError(path, line, "the first line must be the number of entries that follow")
    return int(fields[0])


def read_id_map(path: Path, ctx: ReadContext) -> list[str]:
    """Names indexed by id from an ``entity2id``/``relation2id`` file; ids must be 0..n-1, each once.

    path: the id file; ctx: read context (its ``open`` is used).
    """
    names: list[str | None] | None = None  # None until the count line is read
    id_lines: list[int] = []  # id -> line it was given on
    where: dict[str, int] = {}  # name -> line it was given on
    found = 0
    with ctx.open(path) as f:
        for line in f.text_lines(ctx.bad):
            fields = line.split()
            if not fields:
                continue
            if names is None:
                n = _count(path, f.lineno, fields)
                names, id_lines = [None] * n, [0] * n
                continue
            if len(fields) != 2 or not (fields[1].isascii() and fields[1].isdigit()):
                raise SourceError(path, f.lineno, f"expected 'name id', got {line!r}")
            name, i = fields[0], int(fields[1])
            if i >= len(names):
                raise SourceError(path, f.lineno, f"id {i} out of range: the first line says {len(names)} entries")
            if names[i] is not None:
                raise SourceError(path, f.lineno, f"id {i} given twice (also on line {id_lines[i]})")
            if name in where:
                raise SourceError(path, f.lineno, f"name {name!r} given twice (also on line {where[name]})")
            names[i], id_lines[i], where[name] = name, f.lineno, f.lineno
            found += 1
    if names is None:
        raise SourceError(path, None, "no count line: the file has only blank lines")
    if found != len(names):
        raise SourceError(path, None, f"the first line says {len(names)} entries, found {found}")
    return names  # type: ignore[return-value]  # all filled: n distinct ids in 0..n-1


def read_texts(path: Path, ctx: ReadContext, wanted: set[str]) -> dict[str, str]:
    """Surface texts (first one wins) from an ``entity2text``/``relation2text`` file.

    path: the text file; ctx: read context; wanted: names to keep (others are ignored).
    """
    texts: dict[str, str] = {}
    with ctx.open(path) as f:
        for line in f.text_lines(ctx.bad):
            parts = line.strip().split(None, 1)
            if not parts:
                continue
            if len(parts) != 2:
                ctx.bad.report(path, f.lineno, "expected 'name<TAB>text', found no text")
            elif parts[0] in wanted:
                texts.setdefault(parts[0], parts[1].strip())
    return texts


def parse_triple_lines(
    lines: list[bytes], first_line: int, n_entities: int, n_relations: int
) -> tuple[np.ndarray, list[tuple[int, str]], int]:
    """Parse ``h t r`` lines: (valid ids as an (n, 3) int64 array, bad lines, non-blank lines).

    lines: raw lines as read; first_line: the line number of ``lines[0]``; n_entities,
    n_relations: the id ranges. Bad lines are ``(line number, problem)`` in line order.
    The fast path checks the whole batch with numpy; only a batch with a malformed
    line is rescanned line by line to name it.
    """
    blob = b"".join(lines) + b"\n"
    b = np.frombuffer(blob, dtype=np.uint8)
    ws = (b == 10) | (b == 32) | (b == 9) | (b == 13)
    starts = np.flatnonzero(~ws & np.concatenate(([True], ws[:-1])))
    ends = np.flatnonzero(~ws & np.concatenate((ws[1:], [True])))
    per_line = np.bincount(np.searchsorted(np.flatnonzero(b == 10), starts), minlength=len(lines) + 1)
    bad: list[tuple[int, str]] = []
    if not (~ws & ((b < 48) | (b > 57))).any() and np.isin(per_line, (0, 3)).all() and (ends - starts <= _MAX_DIGITS).all():
        ids = np.fromstring(blob, dtype=np.int64, sep=" ").reshape(-1, 3)  # sep=" ": any whitespace
        numbers = np.flatnonzero(per_line) + first_line
    else:
        rows: list[list[int]] = []
        found: list[int] = []
        for k, raw in enumerate(lines):
            fields = raw.split()
            if fields and (len(fields) != 3 or not all(x.isdigit() and len(x) <= _MAX_DIGITS for x in fields)):
                bad.append((first_line + k, f"expected 3 integer ids 'head tail relation', got {raw.strip()[:80]!r}"))
            elif fields:
                rows.append([int(x) for x in fields])
                found.append(first_line + k)
        ids, numbers = np.array(rows, dtype=np.int64).reshape(-1, 3), np.array(found, dtype=np.int64)
    ok = (ids[:, 0] < n_entities) & (ids[:, 1] < n_entities) & (ids[:, 2] < n_relations)
    for k in np.flatnonzero(~ok):
        h, t, r = ids[k].tolist()
        problem = f"id out of range in 'head tail relation' = '{h} {t} {r}' ({n_entities} entities, {n_relations} relations)"
        bad.append((int(numbers[k]), problem))
    return ids[ok], sorted(bad), len(ids) + len(bad) - int((~ok).sum())


def read_split(
    path: Path, ctx: ReadContext, split: int, entities: list[str], relations: list[str]
) -> Iterator[Triple]:
    """Stream the triples of one ``*2id`` split file, in batches of lines.

    path: the split file; ctx: read context; split: TRAIN/VALID/TEST code to stamp on
    each triple; entities, relations: names indexed by OpenKE id.
    """
    properties = ctx.options.properties
    keep_relation = np.array([properties is None or r in properties for r in relations], dtype=bool)
    expected: int | None = None
    found = 0
    with ctx.open(path) as f:
        lines = f.lines()
        for raw in lines:
            if raw.split():
                expected = _count(path, f.lineno, raw.decode("utf-8", "replace").split())
                break
        first, batch, done = f.lineno + 1, [], False
        while not done:
            batch = list(islice(lines, _CHUNK_LINES))
            done = len(batch) < _CHUNK_LINES
            ids, bad, counted = parse_triple_lines(batch, first, len(entities), len(relations))
            first, found = first + len(batch), found + counted
            for line, problem in bad:
                ctx.bad.report(path, line, problem)
            for h, t, r in ids[keep_relation[ids[:, 2]]].tolist():
                yield Triple(entities[h], relations[r], entities[t], split)
    if expected is None:
        raise SourceError(path, None, "no count line: the file has only blank lines")
    if found != expected:
        raise SourceError(path, None, f"the first line says {expected} triples, found {found}")


def read_openke(path: Path, ctx: ReadContext) -> Iterator[Record]:
    """Stream the records of an OpenKE benchmark directory.

    path: the benchmark directory (with ``entity2id.txt`` etc.).
    ctx: read context; ``ctx.open`` is used for every file, ``ctx.bad`` for malformed
        lines and ``ctx.options.properties`` to keep only some relations' triples
        (every Relation record is still given, to keep the ids aligned).
    """
    if not path.is_dir():
        raise SourceError(path, None, "an OpenKE benchmark is a directory (with entity2id.txt, train2id.txt, ...)")
    files = {name: find_file(path, name, required) for name, _, required in SPLIT_FILES}
    entities = read_id_map(find_file(path, "entity2id.txt", True), ctx)
    relations = read_id_map(find_file(path, "relation2id.txt", True), ctx)
    for names, text_name, make in ((entities, "entity2text.txt", Entity), (relations, "relation2text.txt", Relation)):
        text_file = find_file(path, text_name, False)
        texts = read_texts(text_file, ctx, set(names)) if text_file is not None else {}
        for name in names:
            yield make(name, label=texts.get(name))
    for name, split, _ in SPLIT_FILES:
        if files[name] is not None:
            yield from read_split(files[name], ctx, split, entities, relations)
