"""Output folders that never destroy user data: what a build may replace, and how it lands.

Every build (``kept kg build``, ``kept data build``) writes into ``.NAME.tmp-PID`` beside its
output ``NAME`` and moves it into place only when complete:

* an existing path is replaced only with ``overwrite`` and only when it is what the build
  makes (a kept store, a linked corpus: a directory with a valid ``meta.json``); never a
  path that is, or contains, one of the build's inputs; anything else is an error naming it;
* the final move is a no-replace rename (``renameat2(RENAME_NOREPLACE)``; where the
  filesystem lacks it, an atomically created empty directory renamed over), so of two
  concurrent builds to one path the second fails with "already exists" instead of
  silently replacing the first;
* temp folders of builds whose process is gone (SIGKILL, power loss) are removed by the
  next build to the same path: only names kept makes, ``.NAME.tmp-PID`` / ``.NAME.old-PID``;
* a folder that cannot be written is an :class:`OutputError` (``path: problem``), not a
  traceback, and nothing is left behind.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from kept.kg.sources.errors import SourceError

__all__ = ["OutputError", "is_kept_dir", "prepare_output", "publish", "remove_stale_temps"]


class OutputError(SourceError):
    """An output path kept must not or cannot write; ``str()`` reads ``path: problem``."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(path, None, problem)


def is_kept_dir(path: Path, *keys: str) -> bool:
    """Whether ``path`` is a real directory whose ``meta.json`` is a JSON object with ``keys``."""
    try:
        if path.is_symlink() or not path.is_dir():
            return False
        meta = json.loads((path / "meta.json").read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and all(k in meta for k in keys)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def prepare_output(out: Path, *, overwrite: bool, is_ours: Callable[[Path], bool], what: str,
                   inputs: Iterable[Path] = ()) -> Path:
    """Check ``out`` may be written, clear stale temp folders, create and return the temp folder.

    is_ours: whether an existing path is the kind of output this build makes (``what``, e.g.
    "kept store"). :raises FileExistsError: ``out`` exists and not ``overwrite``.
    :raises OutputError: ``out`` is not ours, is or contains an input, or cannot be written.
    """
    check_output(out, overwrite=overwrite, is_ours=is_ours, what=what, inputs=inputs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(exc.filename or out.parent, f"cannot create the output's folder: {_why(exc)}") from None
    remove_stale_temps(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        probe = tmp / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(out.parent, f"cannot write here: {_why(exc)}") from None
    return tmp


def check_output(out: Path, *, overwrite: bool, is_ours: Callable[[Path], bool], what: str,
                 inputs: Iterable[Path] = ()) -> None:
    """The checks of :func:`prepare_output` that touch nothing."""
    target = out.resolve()
    for given in inputs:
        source = Path(given).resolve()
        if source == target or target in source.parents:
            raise OutputError(out, f"is or contains the input {given}; choose another output path")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{out} already exists; choose another path or pass --overwrite")
        if not is_ours(out):
            raise OutputError(out, f"exists and is not a {what}; refusing to replace it (choose another path)")


def publish(tmp: Path, out: Path, *, overwrite: bool, is_ours: Callable[[Path], bool], what: str) -> None:
    """Move the finished ``tmp`` to ``out`` without ever replacing what another process put there.

    With ``overwrite`` an existing ``out`` of ours is moved aside first and removed only after.
    """
    old = None
    if overwrite and (out.exists() or out.is_symlink()):
        if not is_ours(out):  # checked again: something else may have appeared meanwhile
            raise OutputError(out, f"exists and is not a {what}; refusing to replace it (choose another path)")
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(out, old)
    try:
        rename_noreplace(tmp, out)
    except FileExistsError:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)  # another build replaced it meanwhile: theirs stays
        raise FileExistsError(f"{out} already exists (another build finished first); "
                              f"choose another path or pass --overwrite") from None
    except OSError as exc:
        if old is not None:
            os.rename(old, out)  # put the old output back
        raise OutputError(out, f"cannot move the finished {what} into place: {_why(exc)}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_renameat2 = None


def rename_noreplace(src: Path, dst: Path) -> None:
    """``os.rename(src, dst)`` that fails with FileExistsError when ``dst`` exists, atomically."""
    global _renameat2
    if _renameat2 is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.renameat2
            fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (OSError, AttributeError):  # not Linux/glibc
            _renameat2 = False
    if _renameat2:
        if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), str(dst))
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), str(dst))
    # fallback: claim dst by creating it (atomic, fails when it exists), then rename over the empty dir
    os.mkdir(dst)
    try:
        os.rename(src, dst)
    except OSError:
        os.rmdir(dst)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(out: Path) -> list[Path]:
    """Remove ``.NAME.tmp-PID`` / ``.NAME.old-PID`` folders beside ``out`` whose process is gone."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(?:tmp|old)-([0-9]+)")
    removed = []
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match or entry.is_symlink() or not entry.is_dir():
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
