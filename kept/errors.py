"""The one user-facing error type: a file or folder that cannot be used, named with the problem.

Every ``kept`` command turns an :class:`InputError` (and its subclasses, e.g. the KG store's
``StoreError`` and the readers' ``SourceError``) into ``kept: error: <message>`` and exit status 2.
The message names the path first: ``<path>: <problem>``.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """A bad input file, folder or argument; the message is ``<path>: <problem>``.

    A ValueError, so the commands that already turn ValueError into exit 2 report it too."""


def input_error(path: str | Path, problem: str) -> InputError:
    return InputError(f"{path}: {problem}")
