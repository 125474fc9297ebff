"""experiments/kbert_zh/run.py: the metrics of per-example outcomes and the paired bootstrap interval."""

import importlib.util

import numpy as np
import pytest
from conftest import ROOT


@pytest.fixture(scope="module")
def experiment():
    spec = importlib.util.spec_from_file_location("kbert_zh_run", ROOT / "experiments" / "kbert_zh" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_metrics_of_outcomes(experiment):
    assert experiment._metric(np.array([1.0, 0.0, 1.0, 1.0]), "classification") == 0.75
    counts = np.array([[2, 1, 0], [1, 0, 2]], dtype=float)          # tp, fp, fn per sentence
    assert experiment._metric(counts, "ner") == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert experiment._metric(np.stack([counts, counts * 0]), "ner").tolist() == pytest.approx([6 / 9, 0.0])


def test_paired_interval_brackets_the_difference(experiment):
    rng = np.random.default_rng(0)
    none = (rng.random(2000) < 0.7).astype(float)
    kg = none.copy()
    kg[rng.choice(np.flatnonzero(none == 0), 100, replace=False)] = 1.0     # +5 points, paired
    d = experiment.paired_interval(kg, none, "classification", replicates=2000)
    assert d["estimate"] == pytest.approx(0.05)
    assert 0.03 < d["low"] < 0.05 < d["high"] < 0.07
    same = experiment.paired_interval(none, none, "classification", replicates=500)
    assert same == {"estimate": 0.0, "low": 0.0, "high": 0.0, "replicates": 500}
