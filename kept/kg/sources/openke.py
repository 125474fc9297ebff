"""Reader for OpenKE benchmark directories (FB15k-237, WN18RR, ... in OpenKE's layout).

Files, each possibly ``.gz``/``.bz2``/``.xz``-compressed (``train2id.txt.gz``): required
``entity2id.txt`` and ``relation2id.txt`` (count line, then ``name id``, separated by
any whitespace; names have no spaces) and ``train2id.txt``; optional ``valid2id.txt``
and ``test2id.txt`` (count line, then ``head_id tail_id relation_id`` -- order h, t, r);
optional ``entity2text.txt``/``relation2text.txt`` (``name<TAB>text``: the labels;
names not in the id files are ignored).

Records: ``Entity`` in id order (so the store's first-appearance ids are the OpenKE
ids), then ``Relation`` in id order, then ``Triple(head, relation, tail, split)`` for
train, valid, test. Errors (:class:`SourceError`): ids in an id file not exactly
0..n-1, a name twice, any count line that does not match its file. Bad lines
(``ctx.bad``): a triple line that is not three integers or has an id out of range.
Blank lines are skipped everywhere.
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


def _count(path: Path, line: int, header: bytes | str | None) -> int:
    """The count on a file's first non-blank line (None: there is none), or SourceError."""
    fields = header.split() if header is not None else []
    if len(fields) != 1 or not (fields[0].isascii() and fields[0].isdigit()):
        raise SourceError(path, line, "the first line must be the number of entries that follow")
    return int(fields[0])


def read_id_map(path: Path, ctx: ReadContext) -> list[str]:
    """Names indexed by id from an ``entity2id``/``relation2id`` file; ids must be 0..n-1, each once.

    path: the id file; ctx: read context (its ``open`` is used).
    """
    where: dict[str, int] = {}  # name -> line it was given on
    found = 0
    with ctx.open(path) as f:
        lines = (line for line in f.text_lines(ctx.bad) if line.strip())
        header = next(lines, None)
        names: list[str | None] = [None] * _count(path, f.lineno, header)
        for line in lines:
            fields = line.split()
            if len(fields) != 2 or not (fields[1].isascii() and fields[1].isdigit()):
                raise SourceError(path, f.lineno, f"expected 'name id', got {line!r}")
            name, i = fields[0], int(fields[1])
            if i >= len(names):
                raise SourceError(path, f.lineno, f"id {i} out of range: the first line says {len(names)}")
            if names[i] is not None:
                raise SourceError(path, f.lineno, f"id {i} given twice (also on line {where[names[i]]})")
            if name in where:
                raise SourceError(path, f.lineno, f"name {name!r} given twice (also on line {where[name]})")
            names[i], where[name] = name, f.lineno
            found += 1
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
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0] in wanted:
                texts.setdefault(parts[0], parts[1].strip())
            elif len(parts) == 1:
                ctx.bad.report(path, f.lineno, "expected 'name<TAB>text', found no text")
    return texts


def parse_triple_lines(
    lines: list[bytes], first_line: int, n_entities: int, n_relations: int
) -> tuple[np.ndarray, list[tuple[int, str]], int]:
    """Parse ``h t r`` lines: (in-range ids, (n, 3) int64; sorted (line, problem) list; non-blank count).

    lines: raw lines; first_line: number of ``lines[0]``; n_entities, n_relations: id ranges.
    numpy checks the batch; only a batch with a malformed line is rescanned line by line.
    """
    blob = b"".join(lines) + b"\n"
    b = np.frombuffer(blob, dtype=np.uint8)
    ws = (b == 10) | (b == 32) | (b == 9) | (b == 13)
    starts = np.flatnonzero(~ws & np.concatenate(([True], ws[:-1])))
    ends = np.flatnonzero(~ws & np.concatenate((ws[1:], [True])))
    per_line = np.bincount(np.searchsorted(np.flatnonzero(b == 10), starts), minlength=len(lines) + 1)
    clean = len(starts) and np.isin(per_line, (0, 3)).all() and (ends - starts < _MAX_DIGITS).all()
    clean = clean and not (~ws & ((b < 48) | (b > 57))).any()  # only digits and whitespace
    ids = np.fromstring(blob, np.int64, sep=" ") if clean else None  # sep=" ": any whitespace
    bad: list[tuple[int, str]] = []
    if ids is not None and ids.size == len(starts):
        ids, numbers = ids.reshape(-1, 3), np.flatnonzero(per_line) + first_line
    else:  # a malformed line (or an empty batch): find it line by line
        rows: list[list[int]] = []
        found: list[int] = []  # line numbers of rows
        for k, fields in enumerate(raw.split() for raw in lines):
            if len(fields) == 3 and all(x.isdigit() and len(x) <= _MAX_DIGITS for x in fields):
                rows.append([int(x) for x in fields])
                found.append(first_line + k)
            elif fields:
                got = b" ".join(fields).decode("utf-8", "replace")[:80]
                bad.append((first_line + k, f"expected 3 integer ids 'head tail relation', got {got!r}"))
        ids, numbers = np.array(rows, dtype=np.int64).reshape(-1, 3), np.array(found, dtype=np.int64)
    ok = (ids[:, 0] < n_entities) & (ids[:, 1] < n_entities) & (ids[:, 2] < n_relations)
    for k in np.flatnonzero(~ok):
        h, t, r = ids[k].tolist()
        problem = f"id out of range in 'head tail relation' = '{h} {t} {r}'"
        bad.append((int(numbers[k]), f"{problem} ({n_entities} entities, {n_relations} relations)"))
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
    found = 0
    with ctx.open(path) as f:
        lines = f.lines()
        header = next((raw for raw in lines if raw.split()), None)
        expected = _count(path, f.lineno, header)
        first, done = f.lineno + 1, False
        while not done:
            batch = list(islice(lines, _CHUNK_LINES))
            done = len(batch) < _CHUNK_LINES
            ids, bad, counted = parse_triple_lines(batch, first, len(entities), len(relations))
            first, found = first + len(batch), found + counted
            for line, problem in bad:
                ctx.bad.report(path, line, problem)
            for h, t, r in ids[keep_relation[ids[:, 2]]].tolist():
                yield Triple(entities[h], relations[r], entities[t], split)
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
        raise SourceError(path, None, "an OpenKE benchmark is a directory (entity2id.txt, train2id.txt, ...)")
    files = {name: find_file(path, name, required) for name, _, required in SPLIT_FILES}
    entities = read_id_map(find_file(path, "entity2id.txt", True), ctx)
    relations = read_id_map(find_file(path, "relation2id.txt", True), ctx)
    labelled = ((entities, "entity2text.txt", Entity), (relations, "relation2text.txt", Relation))
    for names, text_name, make in labelled:
        text_file = find_file(path, text_name, False)
        texts = read_texts(text_file, ctx, set(names)) if text_file is not None else {}
        for name in names:
            yield make(name, label=texts.get(name))
    for name, split, _ in SPLIT_FILES:
        if files[name] is not None:
            yield from read_split(files[name], ctx, split, entities, relations)
