"""File modes: what the user's umask gives a new file, for files written by libraries that
create them private (safetensors writes ``model.safetensors`` 0600 via a temp file)."""

from __future__ import annotations

import os
from pathlib import Path


def umask() -> int:
    """The process umask, read without changing it where Linux tells it (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_mode(*paths: str | Path) -> None:
    """Give each existing file the mode a plain ``open(path, "w")`` would (0644 under umask 022)."""
    mode = 0o666 & ~umask()
    for path in paths:
        path = Path(path)
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


def normal_mode_tree(directory: str | Path, pattern: str = "*.safetensors") -> None:
    """:func:`normal_mode` of the files matching ``pattern`` in ``directory`` (an exported model)."""
    normal_mode(*sorted(Path(directory).glob(pattern)))
