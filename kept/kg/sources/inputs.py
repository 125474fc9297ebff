"""Opening dump files: plain, ``.gz``, ``.bz2`` or ``.xz``, read line by line.

Every reader goes through :class:`InputFile`, so all formats share the same
errors for truncated or corrupt compressed files and invalid UTF-8, and the same
progress measure (compressed bytes consumed).

Lines are produced from 4 MB blocks split at ``\n`` (one C call per block). For
compressed files this runs in a background thread: zlib, bz2 and lzma release
the GIL while they work, so a parser on the main thread and the decompressor use
two cores. At most 4 blocks wait in the queue, so memory stays bounded. Plain
files are split on the reading thread (a thread would only add hand-offs).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import queue
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from kept.kg.sources.errors import BadLines, SourceError

_DECOMPRESSORS = {
    ".gz": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
    ".bz2": bz2.BZ2File,
    ".xz": lzma.LZMAFile,
}
_STREAM_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError)
_BLOCK = 1 << 22  # decompressed bytes per read of the background thread
_DONE = object()


def compression_of(path: str | Path) -> str | None:
    """The compression suffix of ``path`` ('.gz', '.bz2', '.xz') or None."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in _DECOMPRESSORS else None


def strip_compression(path: str | Path) -> str:
    """File name without its compression suffix: ``x.json.gz`` -> ``x.json``."""
    name = Path(path).name
    return name[: -len(compression_of(name))] if compression_of(name) else name


class InputFile:
    """One input file, decompressed on the fly. Use as a context manager.

    ``position`` is the number of bytes consumed from the file on disk and
    ``size`` its size, so ``position / size`` is the progress of a read.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(self.path, None, "no such file")
        if self.path.is_dir():
            raise SourceError(self.path, None, "is a directory, expected a file")
        self.size = self.path.stat().st_size
        self._raw: BinaryIO = open(self.path, "rb")
        kind = compression_of(self.path)
        self._stream: BinaryIO = _DECOMPRESSORS[kind](self._raw) if kind else self._raw
        self._position = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lineno = 0

    @property
    def position(self) -> int:
        """Bytes of the file on disk consumed so far (recorded by the reading thread: asking
        the file itself would wait for its lock while a block is being decompressed)."""
        return self._position if not self._raw.closed else self.size

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._stream.close()
        self._raw.close()

    def __enter__(self) -> InputFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fail(self, exc: BaseException) -> SourceError:
        kind = compression_of(self.path) or "file"
        what = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}.get(kind, "file")
        return SourceError(self.path, self.lineno + 1, f"truncated or corrupt {what} data: {exc}")

    def _blocks(self) -> Iterator[list[bytes]]:
        """Lists of lines (without ``\\n``), one list per 4 MB block read."""
        pending = b""
        while not self._stop.is_set():
            block = self._stream.read(_BLOCK)
            self._position = self._raw.tell()
            if not block:
                break
            lines = (pending + block).split(b"\n") if pending else block.split(b"\n")
            pending = lines.pop()
            if lines:
                yield lines
        if pending:
            yield [pending]

    def _produce(self, blocks: queue.Queue) -> None:
        """Background thread: put the blocks of lines in the queue, then _DONE (or the error)."""

        def put(item) -> bool:
            while not self._stop.is_set():
                try:
                    blocks.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for lines in self._blocks():
                if not put(lines):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the reading thread, which raises it
            put(exc)

    def _threaded_blocks(self) -> Iterator[list[bytes]]:
        blocks: queue.Queue = queue.Queue(maxsize=4)
        self._thread = threading.Thread(target=self._produce, args=(blocks,), daemon=True)
        self._thread.start()
        while (item := blocks.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item

    def lines(self) -> Iterator[bytes]:
        """Yield raw lines without the ``\\n``; ``self.lineno`` is the line's number.

        Raises SourceError for an empty file and for a damaged compressed stream.
        """
        blocks = self._threaded_blocks() if self._stream is not self._raw else self._blocks()
        try:
            for lines in blocks:
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
        ``--max-bad-lines`` allows it) and skipped.
        """
        for raw in self.lines():
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad.report(self.path, self.lineno, f"invalid UTF-8 at byte {exc.start} of the line")
                continue
            yield line[:-1] if line.endswith("\r") else line
