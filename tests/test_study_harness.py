"""experiments/study (the regime search) end to end at a tiny size: prepare the data, train K-BERT with
fact masking for a few steps, probe every knowledge condition. Catches a harness that no longer runs
against the package (it once imported a module the restructuring had moved)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, need_data


@pytest.mark.slow
def test_prepare_train_and_probe_at_a_tiny_size(tmp_path):
    lama = need_data("lama")
    data, out = tmp_path / "d", tmp_path / "kbert"
    run = lambda *argv: subprocess.run([sys.executable, *argv], cwd=ROOT, check=True, capture_output=True,  # noqa: E731
                                       text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    run("experiments/study/prepare.py", "--out", str(data), "--lama", str(lama), "--per-relation", "3",
        "--crop-words", "4", "--vocab-size", "600", "--workers", "1")
    run("experiments/study/study.py", "train", "--data", str(data), "--method", "kbert", "--steps", "3",
        "--eval-at", "3", "--layers", "1", "--hidden", "32", "--heads", "2", "--batch-size", "4",
        "--fact-mask-prob", "1", "--branch-object-prob", "1", "--branch-swap-prob", "0.5", "--threads", "1",
        "--out", str(out))
    curve = json.loads((out / "curve.json").read_text())
    point = curve["curve"][0]
    assert point["step"] == 3 and set(point) >= {"full", "leave-one-out", "off"}
    assert point["full"]["seen"]["n"] > 0 and point["full"]["unseen"]["n"] > 0
    assert set(curve["majority"]) == {"seen", "unseen", "all"}
    info = json.loads((out / "step3" / "kept.json").read_text())   # completed as `kept pretrain --export` does
    assert info["method"] == "kbert" and info["store"] == str((data / "store").resolve())
    assert (out / "step3" / "vocab.txt").is_file() and (out / "step3" / "README.md").is_file()


def test_the_committed_learning_curves_plot(tmp_path):
    """docs/img/study_curves.png is drawn from the committed curves: every file the figure names exists
    and has the conditions it plots."""
    from PIL import Image

    out = tmp_path / "curves.png"
    subprocess.run([sys.executable, "experiments/study/plot_curves.py", "--out", str(out)], cwd=ROOT, check=True,
                   capture_output=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"})
    width, height = Image.open(out).size
    assert 800 < width < 2000 and height > 400
