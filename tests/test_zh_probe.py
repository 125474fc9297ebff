"""The Chinese cloze probe set kg_data/zh_probe/: the recipe (kg_data/recipes/make_zh_probe.py) re-makes
the shipped bytes, the files parse as a LAMA probe set with Chinese templates, every fact is in the
K-BERT KG it came from, and `kept probe --lang zh` runs on it in single (characters) and multi mode."""

import importlib.util
import json
import sys

import pytest
from conftest import ROOT

from kept.probe.lama import load_probe_set

ZH_PROBE = ROOT / "kg_data" / "zh_probe"
ZH_VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-chinese-vocab.txt"


def _recipe(monkeypatch):
    path = ROOT / "kg_data" / "recipes" / "make_zh_probe.py"
    spec = importlib.util.spec_from_file_location("make_zh_probe", path)
    recipe = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no __pycache__ in kg_data/recipes
    spec.loader.exec_module(recipe)
    return recipe


def test_recipe_reproduces_the_shipped_files(tmp_path, monkeypatch, capsys):
    assert _recipe(monkeypatch).main(["--out", str(tmp_path / "zh_probe")]) == 0
    assert "medical_category     500 facts" in capsys.readouterr().out
    made = sorted(p.name for p in (tmp_path / "zh_probe").iterdir())
    assert made == sorted(p.name for p in ZH_PROBE.iterdir()) == ["hownet_sememe.jsonl", "medical_category.jsonl",
                                                                  "relations.jsonl"]
    for name in made:
        assert (tmp_path / "zh_probe" / name).read_bytes() == (ZH_PROBE / name).read_bytes(), name
    assert not (tmp_path / "zh_probe.tmp").exists()


def test_probe_set_parses_with_chinese_templates_and_kg_facts():
    relations = dict((rel.relation, (rel, facts)) for rel, facts in load_probe_set(ZH_PROBE))
    assert set(relations) == {"medical_category", "hownet_sememe"}
    med_rel, med = relations["medical_category"]
    how_rel, how = relations["hownet_sememe"]
    assert med_rel.template == "[X]是一种[Y]。" and how_rel.template == "[X]的意思和[Y]有关。"
    assert len(med) == 500 and {f.obj_label for f in med} == {"疾病", "症状", "部位", "治疗", "检查"}
    assert len(how) == 400 and len({f.obj_label for f in how}) == 40 and all(len(f.obj_label) == 1 for f in how)
    assert all(f.obj_label not in f.sub_label and f.sub_uri == f.sub_label for f in med + how)
    # every fact is a triple of the KG it was taken from
    import gzip

    medical = {tuple(line.rstrip("\n").split("\t")) for line in
               open(ROOT / "kg_data" / "kbert" / "Medical.spo", encoding="utf-8")}
    hownet = {tuple(line.rstrip("\n").split("\t")) for line in
              gzip.open(ROOT / "kg_data" / "kbert" / "HowNet.spo.gz", "rt", encoding="utf-8")}
    assert all((f.sub_label, "类别", f.obj_label) in medical for f in med)
    assert all((f.sub_label, "义原", f.obj_label) in hownet for f in how)


def test_recipe_sampling_caps_objects(monkeypatch):
    recipe = _recipe(monkeypatch)
    facts = [(f"主语{i}", "p", "甲" if i % 3 else "乙") for i in range(30)] + [("主语x", "p", "丙")]
    chosen = recipe.sample(facts, per_object=4, objects=2)
    assert sorted({f[2] for f in chosen}) == ["乙", "甲"] and len(chosen) == 8
    assert not recipe.usable("头痛", "头", 4) and recipe.usable("头痛", "症状", 4) and not recipe.usable("a痛", "症状", 4)


def test_kept_probe_runs_on_it_single_and_multi(tmp_path, medical_store):
    from kept.probe.cli import main as probe_main
    from kept.train.data import load_tokenizer
    from kept.train.mlm import MaskedLMModule

    tok = load_tokenizer(ZH_VOCAB)
    MaskedLMModule(vocab_size=len(tok), hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                   max_position_embeddings=64).export_hf(tmp_path / "mlm", tok)
    out = tmp_path / "probe"
    assert probe_main(["--model", str(tmp_path / "mlm"), "--name", "tiny", "--data", str(ZH_PROBE), "--lang", "zh",
                       "--kg", str(medical_store.path), "--mode", "both", "--filter-objects", "--out", str(out),
                       "--no-progress"]) == 0
    modes = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["models"]["tiny"]["modes"]
    assert set(modes) == {"single", "multi"}
    # single mode: the one-character HowNet objects over the vocabulary; the two-character categories skipped
    assert modes["single"]["macro"]["n"] > 0
    assert modes["multi"]["macro"]["n"] > modes["single"]["macro"]["n"]
    text = json.dumps(modes, ensure_ascii=False)
    assert "hownet_sememe" in text and "medical_category" in text
    lines = [json.loads(line) for line in open(out / "predictions.jsonl", encoding="utf-8")]
    single = [line for line in lines if line["mode"] == "single"]
    assert {line["relation"] for line in single} == {"hownet_sememe"} and len(single) == 400
    medical = [line for line in lines if line["mode"] == "multi" and line["relation"] == "medical_category"]
    assert len(medical) == 500 and {line["prediction"] for line in medical} <= {"疾病", "症状", "部位", "治疗", "检查"}


@pytest.mark.parametrize("row", ["x\ty", "a\tb\tc\td"])
def test_recipe_rejects_bad_spo_lines(tmp_path, monkeypatch, row):
    bad = tmp_path / "bad.spo"
    bad.write_text("眼睛发红\t类别\t症状\n" + row + "\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"bad.spo:2: expected subject<TAB>predicate<TAB>object"):
        _recipe(monkeypatch).read_spo(bad)
