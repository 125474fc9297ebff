"""Opening dump files: plain, ``.gz``, ``.bz2`` or ``.xz``, read line by line.

Every reader goes through :class:`InputFile`, so all formats share the same
errors for truncated or corrupt compressed files and invalid UTF-8, and the same
progress measure (compressed bytes consumed).

Lines are produced from 1 MiB blocks split at ``\\n`` (one C call per block).
Compressed files are decompressed by a helper process
(:mod:`kept.kg.sources.decompress_child`, standard library only) that reads the file
and writes the decompressed bytes into a pipe, so decompression and parsing run on
two cores. A thread would not do: a decompressing thread must take the GIL back
after each chunk and waits for it while the parser holds it, so the two mostly
take turns (measured: reading + parsing a Wikidata dump took their summed CPU
time). The pipe bounds memory. The helper shares the file's open description, so
the parent reads the consumed position from the file offset.
"""

from __future__ import annotations

import lzma
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from kept.kg.sources.decompress_child import OPENERS as _DECOMPRESSORS  # the helper's own openers
from kept.kg.sources.errors import BadLines, SourceError

_STREAM_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError)
_BLOCK = 1 << 20  # bytes per read: the pipe's size, so the helper refills it while a block is parsed
_CHILD = Path(__file__).with_name("decompress_child.py")
_PIPE_BYTES = 1 << 20


def compression_of(path: str | Path) -> str | None:
    """The compression suffix of ``path`` ('.gz', '.bz2', '.xz') or None."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in _DECOMPRESSORS else None


def strip_compression(path: str | Path) -> str:
    """File name without its compression suffix: ``x.json.gz`` -> ``x.json``."""
    name = Path(path).name
    return name[: -len(compression_of(name))] if compression_of(name) else name


def _widen_pipe(fd: int) -> None:
    """Give a pipe a 1 MiB buffer where Linux allows it (the default 64 KiB costs a context
    switch per 64 KiB on both sides: ~30 % of the decompression time)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
    except (ImportError, OSError):  # not Linux, or above /proc/sys/fs/pipe-max-size: keep the default
        pass


class InputFile:
    """One input file, decompressed on the fly. Use as a context manager.

    ``position`` is the number of bytes consumed from the file on disk and
    ``size`` its size, so ``position / size`` is the progress of a read.

    Args:
        path: the file.
        helper_process: decompress in a helper process (default True; False, or no
            ``sys.executable``, decompresses on the reading thread).
    """

    def __init__(self, path: str | Path, helper_process: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(self.path, None, "no such file")
        if self.path.is_dir():
            raise SourceError(self.path, None, "is a directory, expected a file")
        self.size = self.path.stat().st_size
        self._raw: BinaryIO = open(self.path, "rb")
        self.kind = compression_of(self.path)
        self._child: subprocess.Popen | None = None
        if self.kind and helper_process and sys.executable:
            # the child reads the file through our descriptor (stdin), so its offset is ours to read
            self._child = subprocess.Popen([sys.executable, "-I", "-S", str(_CHILD), self.kind], stdin=self._raw,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=_BLOCK)
            self._stream: BinaryIO = self._child.stdout  # type: ignore[assignment]
            _widen_pipe(self._child.stdout.fileno())  # type: ignore[union-attr]
        else:
            self._stream = _DECOMPRESSORS[self.kind](self._raw) if self.kind else self._raw
        self.lineno = 0

    @property
    def position(self) -> int:
        """Bytes of the file on disk consumed so far."""
        if self._raw.closed:
            return self.size
        if self._child is not None:
            return os.lseek(self._raw.fileno(), 0, os.SEEK_CUR)
        return self._raw.tell()

    def close(self) -> None:
        if self._child is not None and self._child.poll() is None:
            self._child.kill()  # stopped early (an error, a limit, Ctrl-C): the rest is not needed
        if self._child is not None:
            self._child.wait()
            self._child.stderr.close()  # type: ignore[union-attr]
        self._stream.close()
        self._raw.close()

    def __enter__(self) -> InputFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fail(self, message: object) -> SourceError:
        what = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}.get(self.kind or "", "file")
        return SourceError(self.path, self.lineno + 1, f"truncated or corrupt {what} data: {message}")

    def _check_child(self) -> None:
        """After the helper's output ended: raise its error, if it had one."""
        if self._child is None:
            return
        if self._child.wait() != 0:
            message = self._child.stderr.read().decode("utf-8", "replace").strip()  # type: ignore[union-attr]
            raise self._fail(message.splitlines()[-1] if message else f"exit status {self._child.returncode}")

    def _blocks(self) -> Iterator[list[bytes]]:
        """Lists of lines (without ``\\n``), one list per 1 MiB block read."""
        pending = b""
        # a decompressor in this process: read1, so what was decoded before a damaged spot comes first
        read = self._stream.read1 if self.kind and self._child is None else self._stream.read
        while block := read(_BLOCK):
            lines = (pending + block).split(b"\n") if pending else block.split(b"\n")
            pending = lines.pop()
            if lines:
                yield lines
        self._check_child()  # before the last piece: a truncated stream is reported as such
        if pending:
            yield [pending]

    def lines(self) -> Iterator[bytes]:
        """Yield raw lines without the ``\\n``; ``self.lineno`` is the line's number.

        Raises SourceError for an empty file and for a damaged compressed stream.
        """
        try:
            for lines in self._blocks():
                for line in lines:
                    self.lineno += 1
                    yield line
        except _STREAM_ERRORS as exc:
            raise self._fail(exc) from None
        if self.lineno == 0:
            raise SourceError(self.path, None, "empty input: no lines to read")

    def text_lines(self, bad: BadLines) -> Iterator[str]:
        """Yield lines decoded as strict UTF-8 without the line ending.

        A line that is not valid UTF-8 is reported to ``bad`` (an error unless
        ``--max-bad-lines`` allows it) and skipped. A byte order mark at the start of
        the file is dropped (it is not part of the first field).
        """
        for raw in self.lines():
            if self.lineno == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad.report(self.path, self.lineno, f"invalid UTF-8 at byte {exc.start} of the line")
                continue
            yield line[:-1] if line.endswith("\r") else line
