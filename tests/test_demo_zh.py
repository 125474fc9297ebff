"""`kept demo --lang zh`: the Chinese corpus sample is cut into sentences, the option parses, and
(slow) the whole Chinese path runs on a tiny budget and writes its report."""

import argparse
import json

import pytest
from conftest import ROOT, need_data

from kept.demo_zh import corpus_sentences


def test_corpus_sentences_on_the_real_sample(tmp_path):
    src = need_data("corpus", "zh", "uer", "CLUECorpusSmall_sampled.txt.gz")
    n = corpus_sentences(src, tmp_path / "s.txt", 20, max_chars=60)
    lines = (tmp_path / "s.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == n > 20 and all(5 <= len(line) <= 60 for line in lines)
    assert not (tmp_path / "s.txt.tmp").exists()
    assert any(line.endswith("。") for line in lines)
    with pytest.raises(FileNotFoundError, match="no Chinese corpus"):
        corpus_sentences(tmp_path / "none.txt", tmp_path / "t.txt", 5)
    (tmp_path / "short.txt").write_text("好。\n短\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no sentences in its first 5 lines"):
        corpus_sentences(tmp_path / "short.txt", tmp_path / "t.txt", 5)


def test_demo_parser_has_the_chinese_options():
    from kept.demo import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["demo", "--lang", "zh", "--zh-texts", "10"])
    assert args.lang == "zh" and args.zh_texts == 10 and args.out is None


@pytest.mark.slow
def test_chinese_demo_end_to_end(tmp_path, monkeypatch):
    need_data("corpus", "zh", "uer", "CLUECorpusSmall_sampled.txt.gz")
    from kept.cli import main

    monkeypatch.chdir(ROOT)
    out = tmp_path / "demo-zh"
    assert main(["demo", "--lang", "zh", "--steps", "2", "--zh-texts", "20", "--transe-epochs", "1", "--workers",
                 "0", "--methods", "mlm", "kbert", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["store"]["triples"] > 60_000 and summary["corpus"]["entities"] > 0
    assert set(summary["probe"]) == {"mlm", "kbert"}
    assert summary["probe"]["kbert"]["single"]["n"] > 0 and summary["probe"]["kbert"]["multi"]["n"] > 0
    report = (out / "report" / "README.md").read_text(encoding="utf-8")
    assert "kept demo report (Chinese)" in report and "zh (HowNet + Medical)" in report
    assert list(summary["stage_seconds"]) == ["kg build", "kg embed zh", "data build", "pretrain mlm",
                                              "pretrain kbert", "probe"]
