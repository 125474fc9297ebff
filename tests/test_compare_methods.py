"""experiments/compare_methods/run.py end to end at a tiny size: every registered method from a shared
base model, every knowledge condition it supports, the results table with intervals and costs."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import ROOT, need_data

from kept.methods import BASELINE, METHODS


@pytest.mark.slow
def test_the_study_runs_end_to_end_at_a_tiny_size(tmp_path):
    lama = need_data("lama")
    spec = importlib.util.spec_from_file_location("compare_run", ROOT / "experiments" / "compare_methods" / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    out = tmp_path / "study"
    assert run.main(["--out", str(out), "--lama", str(lama), "--per-relation", "4", "--seeds", "0", "--steps", "4", "--base-steps", "4",
                     "--vocab-size", "800", "--transe-minutes", "0.1", "--workers", "0", "--jobs", "2"]) == 0
    results = json.loads((out / "results.json").read_text())
    for name, method in METHODS.items():                  # every method, in every condition it supports
        assert set(results["results"][name]) == set(method.knowledge_conditions or ("none",)), name
        cell = next(iter(results["results"][name].values()))["multi"]
        assert {"seen", "unseen", "all"} <= set(cell) and cell["all"]["p@1"]["runs"] == 1
        if name != BASELINE:
            diff = cell["unseen"]["diff_p@1"]
            assert diff["low"] <= diff["estimate"] <= diff["high"] and diff["level"] == 0.95
        assert results["costs"]["methods"][name]["peak_rss_mb"] > 0
    assert results["costs"]["methods"][BASELINE]["step_ratio_to_mlm"] == 1.0
    assert {"transe_s", "linking_s", "base_s"} <= set(results["costs"]["precompute_s"])
    assert results["majority"]["multi"]["unseen"] >= 0
    assert (out / "models" / "base" / "config.json").exists() and (out / "study_multi.png").exists()
    assert "| kbert | leave-one-out |" in (out / "report.md").read_text()
    assert results["setup"]["data"]["seen_facts"] < results["setup"]["data"]["facts_with_sentences"]
