"""experiments/kbert_zh/run.py: the metrics of per-example outcomes and the paired bootstrap interval."""

import importlib.util
import json

import numpy as np
import pytest
from conftest import ROOT, need_data


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


def test_report_tabulates_finished_pairs_only(experiment, tmp_path):
    """Per task: mean ± std per condition over the seeds whose two runs both finished, the per-seed paired
    differences, and the seed-averaged bootstrap; an unpaired run is left out; no pair at all is an error."""
    import argparse

    gold = np.arange(10) % 2
    for seed, (none_right, kg_right) in {1: (6, 8), 2: (7, 7)}.items():
        for condition, right in (("none", none_right), ("kg", kg_right)):
            run = tmp_path / "chnsenticorp" / f"{condition}-seed{seed}"
            run.mkdir(parents=True)
            predicted = np.where(np.arange(10) < right, gold, 1 - gold)
            np.save(run / "test_predictions.npy", np.stack([predicted, gold], 1))
            (run / "metrics.json").write_text(json.dumps({"test_accuracy": right / 10, "seconds": 1.0}))
    lonely = tmp_path / "chnsenticorp" / "none-seed3"
    lonely.mkdir()
    (lonely / "metrics.json").write_text(json.dumps({"test_accuracy": 0.0, "seconds": 1.0}))
    args = argparse.Namespace(out=tmp_path, tasks=["chnsenticorp", "medical_ner"], seeds=[1, 2, 3])
    results = experiment.report(args)
    assert list(results) == ["chnsenticorp"]
    e = results["chnsenticorp"]
    assert e["seeds"] == [1, 2] and e["none"]["values"] == [0.6, 0.7] and e["kg"]["values"] == [0.8, 0.7]
    assert e["seed_differences"]["mean"] == pytest.approx(0.1)
    assert e["difference"]["estimate"] == pytest.approx(0.75 - 0.65)   # per-example outcomes averaged over seeds
    assert "| chnsenticorp | test accuracy | 2 | 0.6500 ± 0.0707 | 0.7500 ± 0.0707 | +0.1000 ± 0.1414 |" in (
        tmp_path / "results.md").read_text(encoding="utf-8")
    with pytest.raises(SystemExit, match="no finished pair"):
        experiment.report(argparse.Namespace(out=tmp_path / "empty", tasks=["medical_ner"], seeds=[1]))


@pytest.mark.slow
def test_the_experiment_runs_end_to_end_at_a_tiny_size(experiment, tmp_path):
    """Base pretraining, both conditions of two tasks and the report, on the real Chinese files: what the
    documented multi-hour command does, at a size of seconds; a second call reuses every finished run."""
    need_data("corpus", "zh", "medical_ner")
    need_data("corpus", "zh", "chnsenticorp")
    argv = ["--out", str(tmp_path), "--seeds", "1", "--tasks", "medical_ner", "chnsenticorp", "--documents", "20",
            "--base-steps", "2", "--epochs", "1", "--limit-train", "24", "--limit-eval", "16"]
    assert experiment.main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"medical_ner", "chnsenticorp"}
    assert results["medical_ner"]["metric"] == "test f1" and results["chnsenticorp"]["metric"] == "test accuracy"
    kg = json.loads((tmp_path / "medical_ner" / "kg-seed1" / "metrics.json").read_text())
    none = json.loads((tmp_path / "medical_ner" / "none-seed1" / "metrics.json").read_text())
    assert kg["kg"] and kg["branch_tokens_per_dev_sentence"] > 0 and not none["kg"]
    assert (tmp_path / "base" / "config.json").is_file()
    stamp = (tmp_path / "medical_ner" / "kg-seed1" / "metrics.json").stat().st_mtime_ns
    assert experiment.main(argv) == 0                                  # resumes: nothing is run again
    assert (tmp_path / "medical_ner" / "kg-seed1" / "metrics.json").stat().st_mtime_ns == stamp
