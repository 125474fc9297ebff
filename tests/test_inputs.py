"""InputFile: compressed files decompressed by a helper process, the same lines and errors
as decompressing on the reading thread, no helper left behind."""

import bz2
import gzip
import lzma
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import need_data

from kept.kg.sources.errors import SourceError
from kept.kg.sources.inputs import InputFile

# lines of very different lengths, some longer than a 1 MiB read block, and a final line without "\n"
BODY = b"".join(b"line %d %s\n" % (i, b"x" * (i * 997 % 5000)) for i in range(3000)) + b"y" * (3 << 20) + b"\nlast"
COMPRESS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}


def read_all(path, helper_process=True):
    with InputFile(path, helper_process=helper_process) as f:
        lines = list(f.lines())
        assert f.position == f.size
        return lines, f.lineno


@pytest.mark.parametrize("suffix", list(COMPRESS))
def test_helper_process_gives_the_same_lines(tmp_path, suffix):
    path = tmp_path / f"data.txt{suffix}"
    path.write_bytes(COMPRESS[suffix](BODY))
    lines, count = read_all(path)
    assert lines == BODY.split(b"\n") and count == len(lines)
    assert read_all(path, helper_process=False) == (lines, count)


def test_real_wikidata_sample_same_lines_both_ways():
    path = need_data("dumps", "wikidata_latest-all_first50lines.json.gz")
    assert read_all(path) == read_all(path, helper_process=False)


@pytest.mark.parametrize("suffix", [".gz", ".bz2"])
def test_truncated_stream_error_after_the_good_lines(tmp_path, suffix):
    path = tmp_path / f"data.txt{suffix}"
    data = COMPRESS[suffix](BODY)
    path.write_bytes(data[: len(data) // 2])
    outcomes = []
    for helper in (True, False):
        seen = []
        with pytest.raises(SourceError, match="truncated or corrupt") as err, InputFile(path, helper) as f:
            seen.extend(f.lines())
        assert str(path) in str(err.value)
        assert f"{path}:{len(seen) + 1}:" in str(err.value)  # the line where the damage is
        assert seen == BODY.split(b"\n")[: len(seen)]  # what was decoded came first, whole lines only
        outcomes.append((seen, str(err.value)))
    assert outcomes[0] == outcomes[1]  # same lines and message with and without the helper
    if suffix == ".gz":  # (bzip2 decodes whole 900 kB blocks: half of this file may hold none)
        assert outcomes[0][0]


def test_early_close_stops_the_helper(tmp_path):
    path = tmp_path / "data.txt.gz"
    path.write_bytes(gzip.compress(BODY * 4))
    f = InputFile(path)
    first = next(f.lines())
    assert first == b"line 0 " and 0 < f.position <= f.size
    f.close()
    assert f._child is not None and f._child.returncode is not None  # no helper keeps running


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_during_a_compressed_build(tmp_path):
    """A real SIGINT: exit status 130, no store, and the helper process is gone too."""
    src = tmp_path / "kg.spo.gz"
    src.write_bytes(gzip.compress(b"".join(b"e%d\trel\te%d\n" % (i, i + 1) for i in range(3_000_000)), 1))
    # SIGINT back to its default in the child: a shell that starts the test suite in the
    # background ignores SIGINT, and Python then never installs its KeyboardInterrupt handler
    proc = subprocess.Popen([sys.executable, "-m", "kept.cli", "kg", "build", str(src), "--out",
                             str(tmp_path / "out"), "--no-progress"], stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not _helpers_reading(src) and time.monotonic() < deadline:  # wait until it is decompressing
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert not _helpers_reading(src)


def _helpers_reading(path) -> list[int]:
    """Processes whose stdin is ``path`` (kept's decompression helpers reading it)."""
    pids = []
    for fd0 in Path("/proc").glob("[0-9]*/fd/0"):
        try:
            if os.readlink(fd0) == str(path):
                pids.append(int(fd0.parts[2]))
        except OSError:
            continue
    return pids
