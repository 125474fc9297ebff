"""Errors raised while reading dumps, and the bad-line budget (``--max-bad-lines``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class SourceError(Exception):
    """A problem in an input file, located by file and (when known) line.

    ``str(err)`` reads ``path:line: problem`` so a user can jump straight to it.
    """

    def __init__(self, path: str | Path, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@dataclass
class BadLines:
    """Counts malformed lines and raises once more than ``limit`` were seen.

    limit: how many malformed lines may be skipped in total over all inputs of a
        build (default 0: the first malformed line is an error).
    examples: the first few skipped lines (``path:line: problem``) for the report.
    """

    limit: int = 0
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def report(self, path: str | Path, line: int | None, problem: str) -> None:
        """Record one malformed line; raise :class:`SourceError` past the limit."""
        err = SourceError(path, line, problem)
        if self.count >= self.limit:
            if self.limit:
                raise SourceError(path, line, f"{problem} (more than --max-bad-lines={self.limit} malformed lines)")
            raise err
        self.count += 1
        if len(self.examples) < 10:
            self.examples.append(str(err))
