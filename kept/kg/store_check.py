"""Validation of a KG store on open (cheap, structural) and in ``kept kg info`` (every id, SQLite).

A store someone hands over may be truncated, edited or of another program: every problem
is a :class:`StoreError` naming the file and what is wrong, never a NumPy/SQLite traceback.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from kept.errors import InputError

#: arrays up to this many bytes have every id checked on open; larger ones in `kept kg info`
FULL_CHECK_BYTES = 256 << 20
_SQLITE_MAGIC = b"SQLite format 3\x00"
_TABLES = {"entities", "aliases", "relations", "relation_aliases", "attributes"}


class StoreError(InputError):
    """A store directory that is missing, incomplete, corrupt or of another format version."""


def read_meta(root: Path, format_version: int) -> dict:
    """meta.json as a dict with integer counts; StoreError for anything else."""
    path = root / "meta.json"
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        raise StoreError(f"{root}: {what}; a KG store is a directory made by `kept kg build`")
    if not path.is_file():
        raise StoreError(f"{root} is not a KG store (no meta.json); build one with `kept kg build`")
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise StoreError(f"{path}: not UTF-8 text (byte {exc.start}); the store is corrupt, rebuild it") from None
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}); the store is corrupt, "
                         "rebuild it") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot be read ({exc.strerror})") from None
    if not isinstance(meta, dict):
        raise StoreError(f"{path}: a JSON {type(meta).__name__}, not an object; the store is corrupt, rebuild it")
    version = meta.get("format_version")
    if version != format_version:
        raise StoreError(f"{root}: store format version {version}, this kept reads {format_version}; rebuild it")
    counts = meta.get("counts")
    if not isinstance(counts, dict):
        raise StoreError(f"{path}: no \"counts\" object; the store is corrupt, rebuild it")
    for key in ("entities", "relations", "triples"):
        value = counts.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise StoreError(f"{path}: counts.{key} is {value!r}, not a count; the store is corrupt, rebuild it")
    splits = counts.get("splits", {})
    if not isinstance(splits, dict) or not all(isinstance(v, int) and not isinstance(v, bool)
                                               for v in splits.values()):
        raise StoreError(f"{path}: counts.splits is not an object of counts; the store is corrupt, rebuild it")
    if not isinstance(meta.get("sources", []), list):
        raise StoreError(f"{path}: \"sources\" is not a list; the store is corrupt, rebuild it")
    return meta


def load_array(path: Path, ndim: int, width: int | None = None, kind: str = "i",
               rows: int | None = None) -> np.ndarray:
    """Memory-map one ``.npy``: StoreError unless it has ``ndim`` dimensions (``width`` columns),
    a dtype of kind ``kind`` ('i' integer, 'f' float) and ``rows`` rows."""
    if not path.is_file():
        raise StoreError(f"{path}: missing; the store is incomplete, rebuild it")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        if path.stat().st_size == 0:
            problem = "empty file"
        elif "pickle" in str(exc) or "object" in str(exc).lower():
            problem = "holds Python objects, not numbers"
        else:
            problem = f"not a readable .npy array ({exc})"
        raise StoreError(f"{path}: {problem}; the store is corrupt, rebuild it") from None
    if not isinstance(array, np.ndarray):  # an .npz or a pickle would not get here, but be sure
        raise StoreError(f"{path}: not a .npy array; the store is corrupt, rebuild it")
    shape = "[n]" if ndim == 1 else f"[n, {width}]"
    if array.ndim != ndim or (width is not None and array.shape[1] != width):
        raise StoreError(f"{path}: shape {list(array.shape)}, expected {shape}; the store is corrupt, rebuild it")
    if array.dtype.kind not in (("i", "u") if kind == "i" else ("f",)):
        what = "integer" if kind == "i" else "float"
        raise StoreError(f"{path}: dtype {array.dtype}, expected {what}; the store is corrupt, rebuild it")
    if rows is not None and len(array) != rows:
        raise StoreError(f"{path}: {len(array):,} rows, expected {rows:,}; the store is corrupt, rebuild it")
    return array


def _range(array: np.ndarray, low: int, high: int, block: int = 1 << 22) -> tuple[int, int] | None:
    """(min, max) of ``array`` outside [low, high), or None when every value is inside."""
    lo, hi = None, None
    for i in range(0, len(array), block):
        part = np.asarray(array[i : i + block])
        if part.size:
            lo = int(part.min()) if lo is None else min(lo, int(part.min()))
            hi = int(part.max()) if hi is None else max(hi, int(part.max()))
    if lo is None or (lo >= low and hi < high):
        return None
    return lo, hi


def check_triples(path: Path, triples: np.ndarray, n_entities: int, n_relations: int) -> None:
    """Every head/tail in 0..entities-1 and relation in 0..relations-1."""
    for col, what, n in ((0, "head", n_entities), (1, "relation", n_relations), (2, "tail", n_entities)):
        bad = _range(triples[:, col], 0, n)
        if bad is not None:
            raise StoreError(f"{path}: {what} ids span {bad[0]}..{bad[1]}, outside 0..{n - 1}; "
                             "the store is corrupt, rebuild it")


def check_indptr(path: Path, indptr: np.ndarray, n_triples: int, full: bool) -> None:
    """Starts at 0, ends at the triple count and (``full``) never decreases."""
    if len(indptr) and (int(indptr[0]) != 0 or int(indptr[-1]) != n_triples):
        raise StoreError(f"{path}: runs {int(indptr[0])}..{int(indptr[-1])}, expected 0..{n_triples}; "
                         "the store is corrupt, rebuild it")
    if full and len(indptr) > 1 and bool(np.any(np.diff(np.asarray(indptr)) < 0)):
        raise StoreError(f"{path}: offsets decrease; the store is corrupt, rebuild it")


def check_names(path: Path, n_entities: int, n_relations: int, deep: bool) -> None:
    """names.sqlite is an SQLite database with the store's tables and ids (``deep``: PRAGMA quick_check)."""
    if not path.is_file():
        raise StoreError(f"{path}: missing; the store is incomplete, rebuild it")
    with open(path, "rb") as f:
        head = f.read(100)
    if not head:
        raise StoreError(f"{path}: empty file; the store is corrupt, rebuild it")
    if not head.startswith(_SQLITE_MAGIC):
        raise StoreError(f"{path}: not an SQLite database; the store is corrupt, rebuild it")
    try:
        db = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not _TABLES <= tables:
                missing = ", ".join(sorted(_TABLES - tables))
                raise StoreError(f"{path}: no table {missing}; the store is corrupt, rebuild it")
            for table, n in (("entities", n_entities), ("relations", n_relations)):
                top = db.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
                if (top if top is not None else -1) != n - 1:
                    raise StoreError(f"{path}: {table} ids end at {top}, expected {n - 1}; "
                                     "the store is corrupt, rebuild it")
            if deep:
                verdict = [r[0] for r in db.execute("PRAGMA quick_check")]
                if verdict != ["ok"]:
                    raise StoreError(f"{path}: damaged ({verdict[0]}); the store is corrupt, rebuild it")
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: damaged SQLite database ({exc}); the store is corrupt, rebuild it") from None


def check_range(array: np.ndarray, n: int) -> str | None:
    """'lo..hi' when some value of ``array`` is outside 0..n-1, else None."""
    bad = _range(array, 0, n)
    return None if bad is None else f"{bad[0]}..{bad[1]}"
