"""The `kept` command: build/info/export through the real console entry point."""

import json
import subprocess
import sys

from conftest import ROOT, need_data

from kept.cli import main


def test_kg_build_info_export(tmp_path, capsys):
    out = tmp_path / "wd"
    src = ROOT / "kg_data" / "wikidata" / "wikidata_latest-all_first50lines.json.gz"
    assert main(["kg", "build", str(src), "--out", str(out), "--lang", "en", "--ranks", "truthy",
                 "--properties", "P31,P17,P150", "--no-progress", "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["triples"] > 0 and built["relations"] >= 3
    assert main(["kg", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["triples"] == built["triples"]
    assert info["sources"][0]["format"] == "wikidata-json"
    assert main(["kg", "info", str(out)]) == 0
    assert "entities" in capsys.readouterr().out
    nt = tmp_path / "scotland.nt"
    assert main(["kg", "export", str(out), "--around", "Q22", "--hops", "1", "--out", str(nt)]) == 0
    assert "<http://www.wikidata.org/entity/Q22>" in nt.read_text()
    assert main(["kg", "export", str(out), "--around", "Q999999999", "--out", str(nt)]) == 2
    assert "no entity with key 'Q999999999'" in capsys.readouterr().err


def test_console_script_help_and_build(tmp_path):
    kept = [sys.executable, "-m", "kept.cli"]
    help_text = subprocess.run(kept + ["kg", "build", "--help"], capture_output=True, text=True, check=True).stdout
    for word in ("wikidata-json", "--max-bad-lines", "--min-degree", "--overwrite"):
        assert word in help_text
    res = subprocess.run(kept + ["kg", "build", str(need_data("kg", "Medical.spo")), "--out", str(tmp_path / "m")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "13,864" in res.stdout  # triples in the summary table
    again = subprocess.run(kept + ["kg", "build", str(need_data("kg", "Medical.spo")), "--out", str(tmp_path / "m")],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_export_around_a_label_and_did_you_mean(tmp_path, capsys):
    out = tmp_path / "hownet"
    assert main(["kg", "build", str(ROOT / "kg_data" / "kbert" / "HowNet.spo.gz"), "--out", str(out),
                 "--no-progress"]) == 0
    capsys.readouterr()
    nt = tmp_path / "apple.nt"
    assert main(["kg", "export", str(out), "--around", "苹果", "--out", str(nt)]) == 2
    err = capsys.readouterr().err
    assert "no entity with key '苹果'" in err and "did you mean" in err and "苹果酒" in err
    assert main(["kg", "export", str(out), "--around", "苹果酒", "--hops", "1", "--out", str(nt)]) == 0
    assert "苹果酒" in nt.read_text(encoding="utf-8")


def test_kg_info_describes_the_graph(tmp_path, capsys):
    import numpy as np

    from kept.kg import open_store
    from kept.kg.graph import describe

    out = tmp_path / "medical"
    assert main(["kg", "build", str(ROOT / "kg_data" / "kbert" / "Medical.spo"), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["kg", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    store = open_store(out)
    counts = np.bincount(np.asarray(store.triples)[:, 1], minlength=store.num_relations)
    assert [r["triples"] for r in info["relations"]] == sorted(counts.tolist(), reverse=True)[:10]
    assert info["relations"][0]["key"] == store.relation_key(int(np.argmax(counts)))
    degree = store.degree()
    assert info["degree"]["max"] == int(degree.max()) and info["degree"]["isolated"] == int((degree == 0).sum())
    assert info["top_entities"][0]["degree"] == int(degree.max())
    assert describe(store, top=1000)["relations"] and sum(r["triples"] for r in describe(store, top=1000)["relations"]) \
        == store.num_triples
    assert main(["kg", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "degree (in + out)" in text and "best-connected entities" in text and info["relations"][0]["key"] in text
