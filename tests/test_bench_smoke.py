"""Smoke runs of every benchmark script in bench/ at a tiny size, so that a broken bench fails
here instead of in a user's long run. Each runs the script as a user would (a subprocess,
its own command line) with its quick / small-size flags and ``--out`` in tmp_path, and checks
the JSON it writes. No PyKEEN, no GPU: bench/transe.py runs with ``--skip-pykeen`` (its PyKEEN
side is bench/pykeen_transe.py, which needs bench/.venv-pykeen: ``make bench-env``).
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, need_data

BENCH = ROOT / "bench"
VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"


def run_bench(script: str, *args, timeout: float = 180) -> str:
    """Run ``bench/<script>`` with ``args``; its stdout (fails the test with its output on error)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "KEPT_COMPILE": "0"}  # torch.compile is tested elsewhere; compiling would dominate a smoke run
    proc = subprocess.run([sys.executable, str(BENCH / script), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout


def read_json(path: Path) -> dict:
    assert path.exists(), f"{path} not written"
    return json.loads(path.read_text())


def tiny_openke(root: Path, entities: int = 60, relations: int = 4, triples: int = 400) -> Path:
    """A small OpenKE dataset (entity2id, relation2id, train/valid/test2id) of random triples."""
    rng = random.Random(0)
    facts = sorted({(rng.randrange(entities), rng.randrange(entities), rng.randrange(relations))
                    for _ in range(triples)})
    rng.shuffle(facts)
    root.mkdir(parents=True, exist_ok=True)
    (root / "entity2id.txt").write_text(f"{entities}\n" + "".join(f"e{i}\t{i}\n" for i in range(entities)))
    (root / "relation2id.txt").write_text(f"{relations}\n" + "".join(f"r{i}\t{i}\n" for i in range(relations)))
    n = len(facts)
    for name, part in (("train", facts[: n * 8 // 10]), ("valid", facts[n * 8 // 10: n * 9 // 10]),
                       ("test", facts[n * 9 // 10:])):
        (root / f"{name}2id.txt").write_text(f"{len(part)}\n" + "".join(f"{h} {t} {r}\n" for h, t, r in part))
    return root


@pytest.fixture(scope="module")
def demo_inputs(tmp_path_factory):
    """What bench/fusion_step.py reads from runs/demo, made small: the shipped T-REx store (with
    random 100-d 'TransE' vectors, for ERNIE-T) and its first 300 sentences linked against it."""
    import numpy as np

    from kept.data.build import CorpusOptions, build_linked_corpus
    from kept.kg import open_store
    from kept.kg.build import BuildOptions, build_store
    from kept.kg.transe.io import write_embeddings

    root = tmp_path_factory.mktemp("bench_demo")
    build_store([(ROOT / "kg_data" / "trex" / "trex_facts.nt.gz", None)], root / "store", BuildOptions(progress=False))
    store = open_store(root / "store")
    rng = np.random.default_rng(0)
    write_embeddings(store, rng.standard_normal((store.num_entities, 100), dtype=np.float32),
                     rng.standard_normal((store.num_relations, 100), dtype=np.float32), {}, {"dim": 100})
    with gzip.open(ROOT / "kg_data" / "trex" / "sentences.jsonl.gz", "rt") as f:
        (root / "sentences.jsonl").write_text("".join(itertools.islice(f, 300)))
    build_linked_corpus(root / "sentences.jsonl", root / "corpus", VOCAB, root / "store",
                        CorpusOptions(phrases=None), workers=0, progress=False)
    return root / "store", root / "corpus"


def test_transe_bench_builds_its_store_and_writes_results(tmp_path):
    """The default path of issue 18: no --store, the store built in a temporary directory,
    the report written after that directory is gone."""
    out = tmp_path / "transe.json"
    stdout = run_bench("transe.py", "--data", tiny_openke(tmp_path / "kg"), "--epochs", 1, "--repeats", 1,
                       "--seeds", 2, "--skip-pykeen", "--threads", 1, "--out", out)
    report = read_json(out)
    assert report["complete"] and report["entities"] == 60 and report["test_triples"] > 0
    assert set(report["results"]) == {"kept (sparse_adam)", "kept (adam)"}
    for result in report["results"].values():
        assert len(result["seconds_per_epoch_all"]) == 2 and len(result["test_mrr_by_seed"]) == 2
        assert 0 < result["test"]["overall"]["mrr"] <= 1
    assert "| kept (adam) |" in stdout and "| kept (adam) |" in report["table"]
    assert not out.with_name(out.name + ".tmp").exists()


def test_transe_bench_without_pykeen_env_fails_before_training(tmp_path):
    if (BENCH / ".venv-pykeen" / "bin" / "python").exists():
        pytest.skip("bench/.venv-pykeen exists here")
    proc = subprocess.run([sys.executable, str(BENCH / "transe.py"), "--data", tiny_openke(tmp_path / "kg"),
                           "--out", tmp_path / "t.json"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and "make bench-env" in proc.stderr
    assert not (tmp_path / "t.json").exists()


def test_transe_scale_bench(tmp_path):
    run_bench("transe_scale.py", "--quick", "--out", tmp_path / "scale.json")
    report = read_json(tmp_path / "scale.json")
    assert report["entities"] == 5000 and report["dim"] == 16 and report["peak_rss_mb"] > 0


def test_store_open_bench(tmp_path):
    run_bench("store_open.py", "--quick", "--out", tmp_path / "open.json")
    report = read_json(tmp_path / "open.json")
    assert report["entities"] == 2000 and report["triples"] == 10000 and report["eager_over_open"] > 0


def test_kg_build_bench(tmp_path):
    need_data("dumps", "wikidata_latest-all_first50lines.json.gz")
    out = tmp_path / "kg_build.json"
    run_bench("kg_build.py", "--parts", "a,b,c", "--items-a", 60, "--items-b", 8, "--sizes", "200,400",
              "--claims-factor", 2, "--repeat", 1, "--workdir", tmp_path / "work", "--out", out)
    report = read_json(out)
    assert {"a", "b", "c"} <= set(report["parts"])
    assert report["parts"]["b"]["equivalence"]


def test_ntriples_data_helper(tmp_path):
    need_data("dumps", "wikidata_latest-all_first50lines.json.gz")
    out = tmp_path / "sample.nt.gz"
    run_bench("ntriples_data.py", out)
    with gzip.open(out, "rt") as f:
        lines = list(itertools.islice(f, 1000))
    assert len(lines) == 1000 and all(line.rstrip().endswith(".") for line in lines)
    assert "wdt:" not in lines[0] and lines[0].startswith("<")
    head = tmp_path / "head.nt"
    head.write_text("".join(lines[:300]))
    assert "fast" in run_bench("ntriples_data.py", "--time", head)


def test_linking_bench(tmp_path):
    need_data("lama", "TREx")
    need_data("corpus", "en", "wikitext-2")
    out = tmp_path / "linking.json"
    run_bench("linking.py", "--quick", "--out", out, timeout=300)
    report = read_json(out)
    assert {"quality", "speed"} <= set(report)
    assert report["quality"]["runs"]["aliases store, default"]["recall"] > 0


def test_kbert_tree_bench(tmp_path):
    need_data("kg", "HowNet.spo.gz")
    need_data("corpus", "zh", "book_review", "dev.tsv.gz")
    run_bench("kbert_tree.py", "--sentences", 16, "--repeats", 1, "--out", tmp_path / "tree.json")
    report = read_json(tmp_path / "tree.json")
    assert report["sentences"] == 16 and report["outputs_equal"] and report["ratio"] > 0


def test_probe_bench(tmp_path):
    """Includes the precision check on a trained-model directory (a tiny saved BERT here)."""
    from transformers import BertConfig, BertForMaskedLM

    from kept.train.data import load_tokenizer

    model_dir = tmp_path / "model"
    BertForMaskedLM(BertConfig(vocab_size=len(load_tokenizer(VOCAB)), hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64)).save_pretrained(model_dir)
    load_tokenizer(VOCAB).save_pretrained(model_dir)
    run_bench("probe.py", "--quick", "--real-model", model_dir, "--out", tmp_path / "probe.json")
    report = read_json(tmp_path / "probe.json")
    assert report["queries"] > 0 and report["queries_per_second"]["batched_float32"] > 0
    assert report["max_abs_logprob_diff_batched_vs_naive"] < 1e-3
    assert set(report["precision_check"]["single"]) == {"float32", "bfloat16", "int8"}


def test_data_path_bench(tmp_path):
    run_bench("data_path.py", "--quick", "--out", tmp_path / "data_path.json")
    report = read_json(tmp_path / "data_path.json")
    assert report["model_size"] == "tiny" and report["ratio_step_over_batch"] > 0


def test_fusion_step_bench(tmp_path, demo_inputs):
    store, corpus = demo_inputs
    out = tmp_path / "fusion.json"
    run_bench("fusion_step.py", "--size", "tiny", "--batch", 2, "--seq", 64, "--steps", 1, "--warmup", 1,
              "--threads", 1, "--store", store, "--corpus", corpus, "--out", out)
    report = read_json(out)
    assert {"mlm", "kbert", "ernie-t", "uktp"} <= set(report["methods"])
    assert report["methods"]["mlm"]["ratio_to_mlm"] == 1.0


def test_ntriples_data_help_writes_no_file(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "ntriples_data.py"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Usage" in proc.stdout and not list(tmp_path.iterdir())


def test_transe_bench_keeps_what_it_measured_when_a_late_side_fails(tmp_path):
    """A PyKEEN side that fails (here: an interpreter that exits 1) ends the run, but kept's
    timings, measured before it, are in the report already."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'simulated PyKEEN failure' >&2\nexit 1\n")
    fake.chmod(0o755)
    out = tmp_path / "transe.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEPT_COMPILE": "0", "KEPT_PYKEEN_PYTHON": str(fake)}
    proc = subprocess.run([sys.executable, str(BENCH / "transe.py"), "--data", str(tiny_openke(tmp_path / "kg")),
                           "--epochs", "1", "--repeats", "1", "--seeds", "1", "--threads", "1", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode != 0 and "simulated PyKEEN failure" in proc.stderr
    report = read_json(out)
    assert report["complete"] is False and report["test_triples"] > 0
    measured = report["epoch_seconds_so_far"]
    assert len(measured["kept (sparse_adam)"]) == 1 and len(measured["kept (adam)"]) == 1
    assert measured["pykeen"] == []


@pytest.mark.slow
def test_transe_bench_with_pykeen(tmp_path):
    """The PyKEEN side too, where bench/.venv-pykeen exists (``make bench-env``); the smoke
    test above covers the rest without it."""
    if not (BENCH / ".venv-pykeen" / "bin" / "python").exists():
        pytest.skip("bench/.venv-pykeen not made (make bench-env)")
    out = tmp_path / "transe.json"
    run_bench("transe.py", "--data", tiny_openke(tmp_path / "kg"), "--epochs", 1, "--repeats", 0, "--seeds", 1,
              "--threads", 1, "--out", out, timeout=300)
    report = read_json(out)
    assert report["complete"] and "pykeen" in report["results"]
    check = report["results"]["pykeen"]["cross_check"]
    assert abs(check["pykeen_evaluator_mrr"] - check["kept_evaluator_mrr"]) < 1e-3
