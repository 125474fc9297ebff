"""kept.runtime: glibc malloc thresholds for many-small-step training loops."""

import os
import subprocess
import sys

import pytest

# Allocates and frees a few megabytes 200 times (like a training step) and prints the
# page faults it took; with argv[1] == "1" it first calls reuse_freed_memory().
CHILD = """
import resource, sys
import numpy as np
if sys.argv[1] == "1":
    from kept.runtime import reuse_freed_memory
    print(reuse_freed_memory())
keep = []
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(200):
    step = np.ones(300_000 + (i % 7) * 50_000)  # 2.4-4.8 MB, written
    small = np.ones(100_000)
    keep.append(np.ones(10))
    del step, small
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
"""

linux_glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                                 reason="glibc malloc only")


def run_child(tuned: bool, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "KEPT_MALLOC_TUNING"}
    out = subprocess.run([sys.executable, "-c", CHILD, "1" if tuned else "0"], env={**clean, **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


@linux_glibc
def test_reuse_freed_memory_cuts_page_faults():
    (plain,) = run_child(False)
    applied, tuned = run_child(True)
    assert applied == "True"
    assert int(tuned) < int(plain) / 2, (tuned, plain)  # freed step memory is reused, not faulted in again


@linux_glibc
def test_reuse_freed_memory_respects_the_user():
    assert run_child(True, KEPT_MALLOC_TUNING="0")[0] == "False"
    assert run_child(True, MALLOC_TRIM_THRESHOLD_="1000000")[0] == "False"  # the user's own setting wins


def test_library_notices_are_silenced_and_other_records_kept(capsys):
    import logging
    import warnings

    from pytorch_lightning.utilities.rank_zero import rank_zero_info

    from kept.runtime import quiet_library_notices

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        quiet_library_notices()
        quiet_library_notices()                                    # idempotent
        rank_zero_info("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]")
        rank_zero_info("💡 Tip: For seamless cloud uploads and versioning, try installing [litmodels]")
        rank_zero_info("GPU available: False, used: False")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert [r.getMessage() for r in records] == ["GPU available: False, used: False"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_notices()                                    # dropped where shown, not filtered
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("something about the run", UserWarning, stacklevel=1)
        assert not any(f[1] is not None and "LeafSpec" in f[1].pattern for f in warnings.filters)   # no ignore filter
    assert [str(w.message) for w in caught] == ["something about the run"]
