"""Decompress stdin to stdout: the helper process of :class:`kept.kg.sources.inputs.InputFile`.

    python -I -S decompress_child.py {.gz|.bz2|.xz}  < dump.json.gz  | parser

Run as a separate process so that decompression and parsing use two cores without
sharing a GIL (a decompressing thread spends much of its time waiting for the GIL of a
busy parsing thread). Only the standard library is used (``-S``: no site-packages). A
damaged stream ends with exit status 1 and the decompressor's message on stderr, after
everything decoded before the damage has been written.
"""

import bz2
import gzip
import lzma
import signal
import sys
import zlib

#: compression suffix -> opener of a decompressed binary stream (also used by InputFile in-process)
OPENERS = {".gz": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"), ".bz2": bz2.BZ2File, ".xz": lzma.LZMAFile}


def main(kind: str) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops this process
    source, out = OPENERS[kind](sys.stdin.buffer), sys.stdout.buffer
    try:
        # read1: each block as soon as it is decoded, so the lines before a damaged spot reach the
        # parser (read(n) of a truncated stream raises before returning the n bytes it was filling)
        while block := source.read1(1 << 20):
            out.write(block)
        out.flush()
    except BrokenPipeError:  # the parent stopped reading
        return 0
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        out.flush()
        sys.stderr.write(f"{exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
