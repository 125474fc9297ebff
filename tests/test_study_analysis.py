"""experiments/compare_methods/study_analysis.py: the study table from probe outputs, checked by hand."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("study_analysis", ROOT / "experiments" / "compare_methods" / "study_analysis.py")
analysis = importlib.util.module_from_spec(spec)
spec.loader.exec_module(analysis)

#: (relation, subject, object, seen); two relations, 2 seen + 2 unseen facts each
FACTS = [("P1", "a", "x", 1), ("P1", "b", "x", 1), ("P1", "c", "y", 0), ("P1", "d", "x", 0),
         ("P2", "e", "z", 1), ("P2", "f", "w", 1), ("P2", "g", "z", 0), ("P2", "h", "z", 0)]


def write_probe(folder: Path, ranks_by_model: dict[str, list[int]]) -> Path:
    folder.mkdir(parents=True)
    models = {}
    with open(folder / "predictions.jsonl", "w") as f:
        for model, ranks in ranks_by_model.items():
            for (rel, sub, obj, seen), rank in zip(FACTS, ranks):
                f.write(json.dumps({"model": model, "relation": rel, "mode": "multi", "sub_label": sub, "obj_label": obj,
                                    "sentence": -1, "rank": rank, "prediction": "?", "seen": seen}) + "\n")

            def macro(split, ranks=ranks):
                per_rel = []
                for rel in ("P1", "P2"):
                    rs = [r for (fr, _, _, s), r in zip(FACTS, ranks) if fr == rel and (split == "all" or s == (split == "seen"))]
                    per_rel.append({"p@1": sum(r == 1 for r in rs) / len(rs), "p@10": 1.0,
                                    "mrr": sum(1 / r for r in rs) / len(rs)})
                return {"n": 4, **{k: sum(p[k] for p in per_rel) / 2 for k in ("p@1", "p@10", "mrr")}}
            models[model] = {"modes": {"multi": {"macro": macro("all"), "seen": {"macro": macro("seen")},
                                                 "unseen": {"macro": macro("unseen")}}}}
    (folder / "metrics.json").write_text(json.dumps({"models": models}))
    return folder


def test_table_means_paired_differences_and_majority(tmp_path):
    none = write_probe(tmp_path / "none", {"mlm-seed0": [1, 2, 2, 2, 1, 2, 2, 2], "mlm-seed1": [1, 1, 2, 2, 1, 2, 2, 2]})
    full = write_probe(tmp_path / "full", {"kbert-seed0": [1, 1, 1, 1, 1, 1, 1, 2], "kbert-seed1": [1, 1, 1, 2, 1, 1, 1, 2]})
    table = analysis.analyse({"none": none, "full": full}, {"mlm": {"none": [0, 1]}, "kbert": {"full": [0, 1]}},
                             replicates=2000)
    mlm = table["results"]["mlm"]["none"]["multi"]
    # mlm seen P@1: seed 0 = (1/2 + 1/2)/2 = 50, seed 1 = (2/2 + 1/2)/2 = 75
    assert mlm["seen"]["p@1"] == {"mean": 62.5, "std": pytest.approx(17.68, abs=0.01), "runs": 2}
    kb = table["results"]["kbert"]["full"]["multi"]["unseen"]
    # unseen per fact, mean over seeds: kbert c 1, d 0.5, g 1, h 0; mlm 0 everywhere -> macro (0.75 + 0.5) / 2
    assert kb["diff_p@1"]["estimate"] == pytest.approx(62.5)
    assert kb["diff_p@1"]["low"] <= 62.5 <= kb["diff_p@1"]["high"] and kb["facts"] == 4
    assert "diff_p@1" not in mlm["seen"]                                    # the baseline has no difference to itself
    # majority: P1 -> x (3 of 4), P2 -> z (3 of 4); unseen: P1 c y / d x -> 1/2, P2 g z, h z -> 1
    assert table["majority"]["multi"]["unseen"] == 75.0 and table["majority"]["multi"]["seen"] == 75.0
    md = analysis.markdown(table)
    assert "| kbert | full |" in md and "+62.5 [" in md and "Majority object" in md
    assert analysis.plot(table, tmp_path).exists()
