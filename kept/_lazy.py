"""Lazy re-exports for package ``__init__`` modules (PEP 562).

A package lists its public names and the submodule each lives in; a name is imported
on first access. So ``from kept.fusion.kbert import KBertModule`` works, while importing
``kept.fusion.kbert.tree`` (or running ``kept --help``) does not pull in torch and
Lightning through the package's ``__init__``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public ``name`` lives in ``package.exports[name]``.

    package: the package's ``__name__``. exports: public name -> submodule name (relative to
    the package, e.g. ``"model"``).
    """
    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
