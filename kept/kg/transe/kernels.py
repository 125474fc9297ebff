"""Optional ``torch.compile``-fused versions of TransE's hot loops, with an eager fallback.

A :class:`Compiled` function is compiled on its first call (by default ``dynamic=True``:
one kernel for every batch size). Compiling needs a C++ compiler on CPU (Triton on GPU) and takes
5-30 s the first time on a machine (PyTorch caches the result on disk). If compiling or
running the compiled code fails, a warning is issued once and the plain eager function
is used from then on, so results never depend on a compiler being present (only speed
does). ``KEPT_COMPILE=0`` in the environment turns compilation off everywhere.

Callers decide when compiling pays off (large tables, full evaluations); small runs and
the unit tests stay eager.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch


def compile_enabled() -> bool:
    """False when ``KEPT_COMPILE=0`` is set."""
    return os.environ.get("KEPT_COMPILE", "1") != "0"


class Compiled:
    """``fn`` through ``torch.compile`` when asked, with a one-time fallback to eager.

    Call as ``kernel(*args, compiled=True)``; ``compiled=False`` (or ``KEPT_COMPILE=0``)
    always runs ``fn`` itself. ``dynamic`` is ``torch.compile``'s: True (default) compiles
    every size symbolic; None compiles the sizes of the first call and, once a size
    changes, recompiles with only that one symbolic (a kernel that knows the others runs faster).
    """

    def __init__(self, fn: Callable, dynamic: bool | None = True):
        self.fn, self.dynamic = fn, dynamic
        self._compiled: Callable | None | bool = None  # None: not built yet; False: unavailable

    def __call__(self, *args, compiled: bool = True):
        if compiled and self._compiled is not False and compile_enabled():
            if self._compiled is None:
                self._compiled = torch.compile(self.fn, dynamic=self.dynamic)
            try:
                return self._compiled(*args)
            except Exception as exc:  # no C++ compiler, unsupported backend...: eager from now on
                warnings.warn(f"torch.compile of {self.fn.__name__} unavailable ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); running eagerly", stacklevel=2)
                self._compiled = False
        return self.fn(*args)
