"""Probe-time knowledge conditions (kept probe --knowledge): full, leave-one-out (the KG minus the
probed triple), off (no KG); and that a model which reads the KG cannot be probed without it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kept.data.examples import LinkedExample
from kept.fusion.kbert.branches import BranchTable
from kept.fusion.kbert.tree import SentenceTreeBuilder
from kept.kg import open_store
from kept.kg.build import BuildOptions, build_store
from kept.probe.jobs import fact_triple_rows
from kept.probe.lama import Fact
from kept.train.data import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
EN_VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"
WD, WDT = "http://www.wikidata.org/entity/", "http://www.wikidata.org/prop/direct/"
RDFS = "http://www.w3.org/2000/01/rdf-schema#label"

#: Paris has three out-edges; with max_entities 2 one of them is always left out
FACTS = [("Q90", "P17", "Q142"), ("Q90", "P1376", "Q142"), ("Q90", "P36", "Q1"), ("Q142", "P36", "Q90")]
LABELS = {"Q90": "paris", "Q142": "france", "Q1": "universe", "P17": "country", "P1376": "capital of",
          "P36": "capital"}


@pytest.fixture(scope="module")
def kg(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kc")
    nt = folder / "facts.nt"
    lines = [f"<{WD}{s}> <{WDT}{p}> <{WD}{o}> ." for s, p, o in FACTS]
    lines += [f'<{WD if k[0] == "Q" else WDT}{k}> <{RDFS}> "{v}"@en .' for k, v in LABELS.items()]
    nt.write_text("\n".join(lines) + "\n")
    build_store([(nt, None)], folder / "store", BuildOptions(progress=False))
    return open_store(folder / "store"), load_tokenizer(EN_VOCAB)


def paris_query(store, tok) -> LinkedExample:
    ids = np.asarray(tok("paris is the capital of [MASK] .", add_special_tokens=False)["input_ids"], np.int32)
    return LinkedExample("paris is the capital of [MASK] .", ids, entity_spans=np.asarray([[0, 1]], np.int32),
                         entity_ids=np.asarray([store.entity_id("Q90")], np.int64),
                         entity_scores=np.ones(1, np.float32))


def branch_rows(table: BranchTable, entity: int, withheld: int | None = None) -> list[int]:
    _, rows = table.choose(np.asarray([entity]), None if withheld is None else np.asarray([withheld]))
    return rows.tolist()


def test_fact_triple_rows_finds_each_triple(kg):
    store, _ = kg
    facts = [Fact("P36", "paris", "universe", "Q90", "Q1"), Fact("P36", "paris", "france", "Q90", "Q142"),
             Fact("P36", "france", "paris", "Q142", "Q90"), Fact("P36", "x", "y")]
    rows = fact_triple_rows(store, "P36", facts)
    triples = np.asarray(store.triples)
    ids = store.entity_id
    assert triples[rows[0]].tolist() == [ids("Q90"), store.relation_id("P36"), ids("Q1")]
    assert triples[rows[2]].tolist() == [ids("Q142"), store.relation_id("P36"), ids("Q90")]
    assert rows[1] == -1 and rows[3] == -1         # (Q90, P36, Q142) is not in the KG; no URIs
    assert fact_triple_rows(None, "P36", facts).tolist() == [-1] * 4


def test_leave_one_out_removes_exactly_the_probed_triple(kg):
    store, tok = kg
    table = BranchTable(store, tok, "en", max_entities=2, seed=0)
    paris = store.entity_id("Q90")
    candidates = table.candidates(paris).tolist()                          # all three, seeded order
    assert len(candidates) == 3 and branch_rows(table, paris) == candidates[:2]
    # withholding a shown branch: it goes, the next candidate takes its place, the other stays
    assert branch_rows(table, paris, candidates[0]) == candidates[1:3]
    assert branch_rows(table, paris, candidates[1]) == [candidates[0], candidates[2]]
    # withholding the one not shown changes nothing; -1 withholds nothing
    assert branch_rows(table, paris, candidates[2]) == candidates[:2]
    assert branch_rows(table, paris, -1) == candidates[:2]
    # per sentence: the same subject in two queries, each with its own withheld triple
    builder = SentenceTreeBuilder(tok, table, max_length=64)
    query = paris_query(store, tok)
    full = builder([query, query])
    loo = builder([query, query], withheld=np.asarray([candidates[0], -1]))
    tokens = lambda tree, b: tree.input_ids[b][tree.is_branch[b]].tolist()    # noqa: E731
    shown = lambda rows: [t for r in rows for t in table.branch_tokens(np.asarray([r]))[1].tolist()]  # noqa: E731
    assert tokens(full, 0) == shown(candidates[:2]) == tokens(full, 1) == tokens(loo, 1)
    assert tokens(loo, 0) == shown(candidates[1:3])


def test_off_injects_nothing(kg, tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    from kept.fusion.kbert.scorer import KBertScorer

    store, tok = kg
    model_dir = tmp_path / "kbert"
    config = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertForMaskedLM(config).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    (model_dir / "kept.json").write_text(json.dumps({"method": "kbert", "store": str(store.path)}))
    query = paris_query(store, tok)
    full = KBertScorer.from_pretrained(model_dir, store)
    off = KBertScorer.from_pretrained(model_dir, None, knowledge="off")
    assert full.builder([query]).is_branch.any() and not off.builder([query]).is_branch.any()
    blind = KBertScorer(full.model, tok, None, max_length=full.builder.max_length)
    assert torch.equal(off.mask_log_probs([query])[0], blind.mask_log_probs([query])[0])
    assert not torch.equal(full.mask_log_probs([query])[0], off.mask_log_probs([query])[0])   # branches read
    with pytest.raises(ValueError, match="knowledge must be"):
        KBertScorer.from_pretrained(model_dir, store, knowledge="half")


def test_probe_cli_requires_the_store_and_a_supported_condition(kg, tmp_path, capsys):
    from kept.probe.cli import check_knowledge

    store, _ = kg
    with pytest.raises(ValueError, match=r"kb is a kbert model, which reads the KG at probe time: give --store STORE"):
        check_knowledge(["kb"], ["kbert"], "full", None)
    with pytest.raises(ValueError, match="give --store"):
        check_knowledge(["kb"], ["kbert"], "leave-one-out", None)
    check_knowledge(["kb"], ["kbert"], "off", None)                         # the model alone: no store needed
    check_knowledge(["m", "kb"], [None, "kbert"], "leave-one-out", str(store.path))
    check_knowledge(["m"], ["mlm"], "full", None)                           # reads no KG: nothing to check
    with pytest.raises(ValueError, match=r"et: ernie-t supports --knowledge full / off, not leave-one-out"):
        check_knowledge(["et"], ["ernie-t"], "leave-one-out", str(store.path))


def test_report_states_the_condition():
    from kept.probe.report import markdown_report

    modes = {"multi": {"relations": {}, "macro": {"p@1": 0.5, "p@10": 1.0, "mrr": 0.6, "n": 2, "relations": 1}}}
    report = markdown_report({"kb": {"model_dir": "m/kb", "method": "kbert", "knowledge": "leave-one-out",
                                     "modes": modes},
                              "mlm": {"model_dir": "m/mlm", "method": "mlm", "knowledge": "none", "modes": modes}})
    assert "(method: kbert; knowledge at probe time: **leave-one-out**)" in report
    assert "(method: mlm; reads no KG at probe time)" in report
