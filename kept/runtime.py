"""Process-level settings for training loops made of many small steps.

glibc's ``malloc`` returns freed memory to the system eagerly: blocks over its
(adaptive) mmap threshold are unmapped on free, and free space above the trim
threshold at the top of the heap is released. A training step that allocates and
frees a few megabytes of tensors then gets fresh pages every step, and each page is a
fault the kernel must zero: on FB15k-237 TransE (batch 1024, one negative) that was
~200 faults per step and 20-25 % of the epoch time (``docs/benchmarks.md``). Raising
both thresholds makes freed step memory reused instead. Large tables (above the mmap
threshold) are still mapped and unmapped directly, so memory held back is bounded by
the trim threshold.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: blocks below this size come from the heap (glibc's largest adaptive value: 32 MiB)
MMAP_THRESHOLD = 32 << 20
#: free heap space kept for reuse before it is returned to the system
TRIM_THRESHOLD = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
_applied = False


def reuse_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Set glibc malloc's mmap and trim thresholds for this process; True when applied.

    mmap_threshold: allocations at least this large are mapped directly (default 32 MiB).
    trim_threshold: free heap memory kept before trimming (default 64 MiB).
    Does nothing (False) off Linux/glibc, when the user already set ``MALLOC_MMAP_THRESHOLD_``
    or ``MALLOC_TRIM_THRESHOLD_``, or when ``KEPT_MALLOC_TUNING=0``. Safe to call repeatedly.
    """
    global _applied
    if _applied:
        return True
    if (not sys.platform.startswith("linux") or os.environ.get("KEPT_MALLOC_TUNING", "1") == "0"
            or "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    return _applied


#: messages of the libraries kept drives that tell a user nothing about their run
LIBRARY_NOTICES = (
    "💡 Tip: For seamless cloud",                                   # Lightning's adverts (litlogger, litmodels)
    "`isinstance(treespec, LeafSpec)` is deprecated",              # torch's pytree, triggered inside Lightning
    "`tensorboardX` has been removed as a dependency",             # Lightning: CSV logs without tensorboard (README)
)


class _DropNotices:
    """A logging filter that drops records carrying one of :data:`LIBRARY_NOTICES`."""

    def filter(self, record) -> bool:
        message = record.getMessage()
        return not any(notice in message for notice in LIBRARY_NOTICES)


def _show_unless_notice(message, category, filename, lineno, file=None, line=None) -> None:
    if not any(notice in str(message) for notice in LIBRARY_NOTICES):
        _show_unless_notice.original(message, category, filename, lineno, file, line)


def quiet_library_notices() -> None:
    """Silence :data:`LIBRARY_NOTICES` (Lightning's log records and torch's FutureWarning); idempotent.

    Everything else Lightning or torch reports (warnings about the run itself) still shows. The
    warning is dropped where it would be *shown*, not by an "ignore" filter: Python does not cache
    an ignored warning, so a filter would re-match every filter's regex on each of the per-step
    warnings Lightning triggers (measured: TransE's lazy-Adam epoch 30 % slower), while a shown
    warning is cached after its first time and costs nothing per step.
    """
    import logging
    import warnings

    if warnings.showwarning is not _show_unless_notice:
        _show_unless_notice.original = warnings.showwarning
        warnings.showwarning = _show_unless_notice
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                 "lightning.pytorch.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotices) for f in logger.filters):
            logger.addFilter(_DropNotices())
