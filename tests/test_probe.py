"""kept.probe: LAMA loading, queries, the batched scorer, ranks/metrics by hand, dispatch, the CLI."""

from __future__ import annotations

import gzip
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertTokenizer

from kept.data.examples import LinkedExample
from kept.probe.candidates import masked_candidate_scores, pll_candidate_scores
from kept.probe.lama import ProbeDataError, load_probe_set, load_relations, read_facts
from kept.probe.metrics import gold_ranks, macro_average, summarize
from kept.probe.probe import ProbeOptions, probe_multi, probe_relations, probe_single, seen_flags
from kept.probe.queries import QueryBuilder, fill_sentence, fill_template
from kept.probe.scorers import MaskedLMScorer, length_sorted_batches, load_scorer

WORDS = ["was", "born", "in", "died", ".", ",", "the", "a", "he", "she", "paris", "london", "berlin", "rome",
         "france", "new", "york", "alice", "bob", "carol", "dave", "eve", "city", "of", "##s"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
#: logits of the constant model: everything else 0
BIAS = {"paris": 5.0, "london": 4.0, "new": 4.0, "berlin": 3.0, "rome": 2.0, "york": 2.0}
BORN = "[X] was born in [Y] ."


def write_jsonl(path: Path, records: list, gz: bool = False) -> Path:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def fact(sub: str, obj: str, sub_uri: str | None = None, obj_uri: str | None = None, **extra) -> dict:
    record = {"sub_label": sub, "obj_label": obj, **extra}
    if sub_uri:
        record["sub_uri"] = sub_uri
    if obj_uri:
        record["obj_uri"] = obj_uri
    return record


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return BertTokenizer(vocab=str(path), do_lower_case=True)


def tiny_config(**kw) -> BertConfig:
    return BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64, **kw)


@pytest.fixture(scope="module")
def constant_model():
    """A BERT whose MLM logits are BIAS at every position, whatever the input: ranks are hand-computable."""
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_config(tie_word_embeddings=False)).eval()
    with torch.no_grad():
        model.cls.predictions.decoder.weight.zero_()
        model.cls.predictions.decoder.bias.copy_(constant_logits())
    return model


def constant_logits() -> torch.Tensor:
    return torch.tensor([BIAS.get(t, 0.0) for t in VOCAB])


@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(1)
    return BertForMaskedLM(tiny_config()).eval()


def save_model(model, tokenizer, out: Path, method: str | None = None) -> Path:
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if method:
        (out / "kept.json").write_text(json.dumps({"method": method}))
    return out


@pytest.fixture
def probe_dir(tmp_path):
    """relations.jsonl in the parent, P19 plain and P20 gzipped, as in LAMA's layout."""
    root = tmp_path / "lama"
    (root / "TREx").mkdir(parents=True)
    write_jsonl(root / "relations.jsonl", [{"relation": "P20", "template": "[X] died in [Y] .", "label": "died"},
                                           {"relation": "P19", "template": BORN, "label": "born", "type": "N-1"}])
    write_jsonl(root / "TREx" / "P19.jsonl", [
        fact("Alice", "Paris", "Q1", "Q10"), fact("Bob", "London", "Q2", "Q11"), fact("Carol", "Rome", "Q3", "Q12"),
        fact("Dave", "France", "Q4", "Q13"), fact("Eve", "New York", "Q5", "Q14")])
    write_jsonl(root / "TREx" / "P20.jsonl.gz", [fact("Alice", "London", evidences=[
        {"sub_surface": "Alice", "masked_sentence": "Alice died in [MASK] , the city ."}])], gz=True)
    return root / "TREx"


# ---- loading ------------------------------------------------------------------------------------
def test_load_probe_set_layout_order_and_fields(probe_dir):
    probe = load_probe_set(probe_dir)
    assert [r.relation for r, _ in probe] == ["P20", "P19"]                      # relations.jsonl order
    p20, p19 = probe[0], probe[1]
    assert p19[0].template == BORN and p19[0].type == "N-1" and len(p19[1]) == 5
    assert p19[1][0].sub_uri == "Q1" and p19[1][0].source.endswith("P19.jsonl:1")
    assert p20[1][0].masked_sentences == ("Alice died in [MASK] , the city .",)
    assert p20[1][0].sub_surfaces == ("Alice",)
    assert [r.relation for r, _ in load_probe_set(probe_dir, ["P19"])] == ["P19"]


def test_load_errors_name_file_and_line(probe_dir, tmp_path):
    with pytest.raises(ProbeDataError, match=r"no facts file for relation\(s\) P999.*available: P19, P20"):
        load_probe_set(probe_dir, ["P999"])
    bad = write_jsonl(tmp_path / "P1.jsonl", [fact("A", "b"), "{not json"])
    with pytest.raises(ProbeDataError, match=r"P1\.jsonl:2: invalid JSON"):
        read_facts(bad)
    bad = write_jsonl(tmp_path / "P2.jsonl", [fact("A", "b"), {"sub_label": "A"}])
    with pytest.raises(ProbeDataError, match=r"P2\.jsonl:2: missing 'obj_label'"):
        read_facts(bad)
    rels = write_jsonl(tmp_path / "relations.jsonl", [{"relation": "P1", "template": "[X] is [Y]"},
                                                     {"relation": "P2", "template": "[X] only"}])
    with pytest.raises(ProbeDataError, match=r"relations\.jsonl:2: template .* \[X\] and \[Y\]"):
        load_relations(rels)
    with pytest.raises(ProbeDataError, match="no relation files.*TREx/"):
        load_probe_set(probe_dir.parent)


def test_fill_template_and_sentence():
    text, span = fill_template("[Y] is the capital of [X] .", "France", 2)
    assert text == "[MASK] [MASK] is the capital of France ." and text[span[0]:span[1]] == "France"
    text, span = fill_sentence("Alice (born in [MASK]) met alice.", 3, "Alice")
    assert text == "Alice (born in [MASK] [MASK] [MASK]) met alice." and span == (0, 5)
    text, span = fill_sentence("Born in [MASK], ALICE sang.", 2, "alice")
    assert text[span[0]:span[1]] == "ALICE" and span[0] > text.index("[MASK] [MASK]")
    assert fill_sentence("[MASK] and [MASK]", 1, "x") is None
    assert fill_sentence("no mask here", 1, "x") is None


# ---- metrics ------------------------------------------------------------------------------------
def test_gold_ranks_ties_count_against_gold_and_exclusion():
    scores = torch.tensor([[3.0, 1.0, 2.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 5.0, 4.0, 0.0]])
    gold = torch.tensor([2, 1, 2])
    assert gold_ranks(scores, gold).tolist() == [2, 4, 2]                       # constant row: gold last
    excluded = torch.tensor([[True, False, True, False], [False] * 4, [False, True, False, False]])
    assert gold_ranks(scores, gold, excluded).tolist() == [1, 4, 1]             # the gold is never excluded
    assert summarize([1, 2, 4, 20]) == {"n": 4, "p@1": 0.25, "p@10": 0.75, "mrr": (1 + 1 / 2 + 1 / 4 + 1 / 20) / 4}
    macro = macro_average({"a": summarize([1, 1]), "b": summarize([2]), "c": summarize([])})
    assert macro["relations"] == 2 and macro["n"] == 3 and macro["p@1"] == 0.5 and macro["mrr"] == 0.75


# ---- the scorer ---------------------------------------------------------------------------------
def naive_mask_log_probs(model, tokenizer, example: LinkedExample) -> torch.Tensor:
    """Reference: one unpadded example, the full [1, L, V] logits, log-softmax at the masks."""
    ids = torch.tensor([[tokenizer.cls_token_id, *example.input_ids.tolist(), tokenizer.sep_token_id]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    return logits[ids[0] == tokenizer.mask_token_id].log_softmax(-1)


def test_length_sorted_batches_cover_every_index_within_budget():
    lengths = np.array([5, 30, 7, 7, 12, 3, 30, 9])
    batches = length_sorted_batches(lengths, batch_size=3, max_batch_tokens=60)
    assert sorted(np.concatenate(batches).tolist()) == list(range(8))
    assert all(len(b) <= 3 and (len(b) == 1 or len(b) * lengths[b].max() <= 60) for b in batches)
    assert all(lengths[a].max() <= lengths[b].min() for a, b in zip(batches, batches[1:]))


def test_masked_lm_scorer_matches_unbatched_full_logits(random_model, tokenizer):
    builder = QueryBuilder(tokenizer)
    texts = ["alice was born in [MASK] .", "[MASK] [MASK] is a city of france , he was born in the city .",
             "bob [MASK] .", "carol died in [MASK] [MASK] [MASK] , the city of new york .", "eve was born in [MASK] ."]
    examples = builder.build(texts, [None] * 5, [None] * 5)
    scorer = MaskedLMScorer(random_model, tokenizer, batch_size=2, max_batch_tokens=40)   # several padded batches
    got = scorer.mask_log_probs(examples)
    for example, log_probs in zip(examples, got):
        expected = naive_mask_log_probs(random_model, tokenizer, example)
        assert log_probs.shape == expected.shape == ((example.input_ids == 4).sum(), len(VOCAB))
        torch.testing.assert_close(log_probs, expected, atol=1e-5, rtol=1e-5)


def test_scorer_options_bf16_and_int8_stay_close(random_model, tokenizer, tmp_path):
    model_dir = save_model(random_model, tokenizer, tmp_path / "m")
    examples = QueryBuilder(tokenizer).build(["alice was born in [MASK] ."], [None], [None])
    base = MaskedLMScorer.from_pretrained(model_dir).mask_log_probs(examples)[0]
    for options in ({"dtype": "bfloat16"}, {"quantize": True}):
        other = MaskedLMScorer.from_pretrained(model_dir, **options).mask_log_probs(examples)[0]
        assert other.dtype == torch.float32 and other.shape == base.shape
        assert (other - base).abs().max() < 0.05, options
    with pytest.raises(ValueError, match="dtype"):
        MaskedLMScorer.from_pretrained(model_dir, dtype="float16")


def test_candidate_scores_match_naive_reference(random_model, tokenizer):
    builder = QueryBuilder(tokenizer)
    queries = builder.build(["alice was born in [MASK] [MASK] .", "[MASK] [MASK] , bob died ."], [None] * 2, [None] * 2)
    word = {w: i for i, w in enumerate(VOCAB)}
    candidates = torch.tensor([[word["new"], word["york"]], [word["paris"], word["london"]],
                               [word["berlin"], word["rome"]]])                                  # [C, 2]
    scorer = MaskedLMScorer(random_model, tokenizer, batch_size=3)
    masked = masked_candidate_scores(scorer, queries, candidates, chunk_size=1)
    pll = pll_candidate_scores(scorer, queries, candidates, tokenizer.mask_token_id, chunk_size=4)
    for q, query in enumerate(queries):
        lp = naive_mask_log_probs(random_model, tokenizer, query)                             # [2, V]
        slots = np.flatnonzero(query.input_ids == tokenizer.mask_token_id)
        for c, cand in enumerate(candidates.tolist()):
            assert masked[q, c].item() == pytest.approx(lp[0, cand[0]].item() + lp[1, cand[1]].item(), abs=1e-4)
            total = 0.0
            for i in range(2):                            # PLL: write the candidate in, mask piece i
                ids = query.input_ids.copy()
                ids[slots] = cand
                ids[slots[i]] = tokenizer.mask_token_id
                variant = LinkedExample(query.text, ids)
                total += naive_mask_log_probs(random_model, tokenizer, variant)[0, cand[i]].item()
            assert pll[q, c].item() == pytest.approx(total, abs=1e-4)


# ---- probing, ranks by hand ----------------------------------------------------------------------
def hand_log_prob(*tokens: str) -> list[float]:
    lse = math.log(sum(math.exp(BIAS.get(t, 0.0)) for t in VOCAB))
    return [BIAS.get(t, 0.0) - lse for t in tokens]


def test_single_wordpiece_ranks_by_hand(constant_model, tokenizer, probe_dir):
    (relation, facts), = load_probe_set(probe_dir, ["P19"])
    scorer = MaskedLMScorer(constant_model, tokenizer)
    builder = QueryBuilder(tokenizer)
    metrics, records = probe_single(scorer, builder, relation, facts, ProbeOptions(progress=False))
    # paris 5 -> 1; london 4 (new 4 ties, against the gold) -> 3; rome 2 (york 2 ties) -> 6;
    # france 0 ties with every other token -> rank V; "new york" is two wordpieces -> skipped
    assert [r["rank"] for r in records] == [1, 3, 6, len(VOCAB)]
    assert [r["prediction"] for r in records] == ["paris"] * 4
    assert metrics["n"] == 4 and metrics["p@1"] == 0.25 and metrics["p@10"] == 0.75
    assert metrics["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 6 + 1 / len(VOCAB)) / 4)
    assert metrics["skipped"] == {"object not one known wordpiece": 1}
    common = ProbeOptions(common_vocab=["london", "rome", "france", "notaword"], progress=False)
    metrics, records = probe_single(scorer, builder, relation, facts, common)
    assert [r["rank"] for r in records] == [1, 2, 3] and metrics["p@1"] == pytest.approx(1 / 3)
    assert metrics["skipped"]["object not in the common vocabulary"] == 1           # paris


def test_multi_wordpiece_ranks_by_hand_and_pll(constant_model, tokenizer, probe_dir):
    (relation, facts), = load_probe_set(probe_dir, ["P19"])
    scorer, builder = MaskedLMScorer(constant_model, tokenizer), QueryBuilder(tokenizer)
    # candidates (mean of piece logits): paris 5, london 4, new york (4 + 2) / 2 = 3, rome 2, france 0
    metrics, records = probe_multi(scorer, builder, relation, facts, ProbeOptions(progress=False))
    assert [r["rank"] for r in records] == [1, 2, 4, 5, 3] and metrics["candidates"] == 5
    assert records[-1]["obj_label"] == "New York" and records[0]["prediction"] == "paris"
    # sum of log-probs: new york = log p(new) + log p(york) falls below rome, above france
    lp = dict(zip(["paris", "london", "rome", "france"], hand_log_prob("paris", "london", "rome", "france")))
    new_york = sum(hand_log_prob("new", "york"))
    assert lp["rome"] > new_york > lp["france"]
    for scoring in ("masked", "pll"):          # the constant model ignores context: PLL = masked sum
        options = ProbeOptions(length_norm="sum", multi_scoring=scoring, progress=False)
        _, records = probe_multi(scorer, builder, relation, facts, options)
        assert [r["rank"] for r in records] == [1, 2, 3, 5, 4], scoring
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 5 + 1 / 3) / 5)


def test_filter_other_objects_of_the_same_subject(constant_model, tokenizer, tmp_path):
    write_jsonl(tmp_path / "relations.jsonl", [{"relation": "P19", "template": BORN}])
    write_jsonl(tmp_path / "P19.jsonl", [fact("Alice", "Paris", "Q1"), fact("Alice", "London", "Q1"),
                                         fact("Bob", "London", "Q2")])
    (relation, facts), = load_probe_set(tmp_path)
    scorer, builder = MaskedLMScorer(constant_model, tokenizer), QueryBuilder(tokenizer)
    for mode, run in (("single", probe_single), ("multi", probe_multi)):
        _, plain = run(scorer, builder, relation, facts, ProbeOptions(progress=False))
        _, filtered = run(scorer, builder, relation, facts, ProbeOptions(filter_objects=True, progress=False))
        assert [r["rank"] for r in plain] == ([1, 3, 3] if mode == "single" else [1, 2, 2])
        assert [r["rank"] for r in filtered] == ([1, 2, 3] if mode == "single" else [1, 1, 2])   # Paris left out
        assert filtered[1]["prediction"] == "london"


def test_sentence_mode_and_missing_template(constant_model, tokenizer, probe_dir, tmp_path):
    scorer, builder = MaskedLMScorer(constant_model, tokenizer), QueryBuilder(tokenizer)
    probe = load_probe_set(probe_dir, ["P20"])
    metrics, _ = probe_relations(scorer, builder, probe, ProbeOptions(queries="sentences", progress=False))
    assert metrics["single"]["relations"]["P20"]["n"] == 1                   # london: new (4) ties -> rank 3
    assert metrics["single"]["macro"]["mrr"] == pytest.approx(1 / 3)
    write_jsonl(tmp_path / "P7.jsonl", [fact("a", "b")])
    with pytest.raises(ProbeDataError, match="relation P7 has no template.*--queries sentences"):
        probe_relations(scorer, builder, load_probe_set(tmp_path), ProbeOptions(progress=False))


# ---- KG: subject entities and seen/unseen -------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    from kept.kg import open_store
    from kept.kg.build import BuildOptions, build_store

    wd = "http://www.wikidata.org/entity/"
    label = "<http://www.w3.org/2000/01/rdf-schema#label>"
    lines = [f'<{wd}{q}> {label} "{name}"@en .' for q, name in
             [("Q1", "Alice"), ("Q2", "Bob"), ("Q3", "Carol"), ("Q10", "Paris"), ("Q11", "London"), ("Q12", "Rome")]]
    lines += [f"<{wd}Q1> <http://www.wikidata.org/prop/direct/P19> <{wd}Q10> .",
              f"<{wd}Q3> <http://www.wikidata.org/prop/direct/P19> <{wd}Q11> ."]
    src = tmp_path_factory.mktemp("kg") / "facts.nt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = src.parent / "store"
    build_store([(src, None)], out, BuildOptions(progress=False))
    return open_store(out)


def test_subject_entity_from_uri_or_linker(tokenizer, tiny_store):
    builder = QueryBuilder(tokenizer, store=tiny_store)
    texts, spans, keys = [], [], []
    for subject, key in (("Alice", "Q1"), ("Carol", None), ("Dave", "Q404")):
        text, span = fill_template("[X] was born in [Y] , london .", subject, 1)
        texts.append(text)
        spans.append(span)
        keys.append(key)
    alice, carol, dave = builder.build(texts, spans, keys)
    ids = {q: tiny_store.entity_id(q) for q in ("Q1", "Q3", "Q11")}
    assert alice.entity_spans.tolist() == [[0, 1], [6, 7]] and alice.entity_ids.tolist() == [ids["Q1"], ids["Q11"]]
    assert alice.entity_scores[0] == 1.0                                            # marked by sub_uri
    assert carol.entity_ids.tolist() == [ids["Q3"], ids["Q11"]]                     # found by the linker
    assert dave.entity_ids.tolist() == [ids["Q11"]]                                 # unknown subject: nothing
    assert QueryBuilder(tokenizer).build(texts[:1], spans[:1], keys[:1])[0].entity_spans.shape == (0, 2)


def test_seen_flags(tiny_store, probe_dir):
    (_, facts), = load_probe_set(probe_dir, ["P19"])
    # Alice-Paris is a store triple; Bob is in the store without it; Carol-Rome: Carol was born in London
    assert seen_flags(tiny_store, "P19", facts).tolist() == [1, 0, 0, 0, 0]
    assert seen_flags(tiny_store, "P999", facts).tolist() == [0] * 5
    assert seen_flags(None, "P19", facts).tolist() == [-1] * 5


# ---- dispatch and CLI ---------------------------------------------------------------------------
def test_load_scorer_dispatch(random_model, tokenizer, tmp_path, monkeypatch):
    plain = save_model(random_model, tokenizer, tmp_path / "plain")
    assert isinstance(load_scorer(plain), MaskedLMScorer)
    assert isinstance(load_scorer(save_model(random_model, tokenizer, tmp_path / "eb", "ernie-baidu")),
                      MaskedLMScorer)
    calls = []

    class FakeKBertScorer:
        @classmethod
        def from_pretrained(cls, model_dir, store=None, device="cpu"):
            calls.append((Path(model_dir), store, device))
            return cls()

    monkeypatch.setitem(sys.modules, "kept.fusion.kbert.scorer", types.SimpleNamespace(KBertScorer=FakeKBertScorer))
    kbert = save_model(random_model, tokenizer, tmp_path / "kb", "kbert")
    assert isinstance(load_scorer(kbert, store="STORE"), FakeKBertScorer) and calls == [(kbert, "STORE", "cpu")]
    odd = save_model(random_model, tokenizer, tmp_path / "odd", "mystery")
    with pytest.raises(ValueError, match=r"kept\.json: unknown method 'mystery'"):
        load_scorer(odd)


def test_cli_two_models_metrics_report_plots(constant_model, random_model, tokenizer, probe_dir, tiny_store, tmp_path,
                                             capsys):
    from kept.probe.cli import main

    a = save_model(constant_model, tokenizer, tmp_path / "const", "mlm")
    b = save_model(random_model, tokenizer, tmp_path / "rand")
    out = tmp_path / "out"
    rc = main(["--model", str(a), "--model", str(b), "--name", "const", "--name", "rand", "--data", str(probe_dir),
               "--relation", "P19", "--store", str(tiny_store.path), "--seen-store", str(tiny_store.path),
               "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    result = json.loads((out / "metrics.json").read_text())
    const = result["models"]["const"]
    assert set(result["models"]) == {"const", "rand"} and const["method"] == "mlm"
    assert const["modes"]["single"]["macro"]["p@1"] == 0.25
    assert const["modes"]["multi"]["relations"]["P19"]["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 5 + 1 / 3) / 5)
    assert const["modes"]["single"]["seen"]["macro"]["n"] == 1 and const["modes"]["single"]["seen"]["macro"]["p@1"] == 1
    report = (out / "report.md").read_text()
    assert "| P19 born | 25.0 | 75.0 |" in report and "rand P@1" in report and "| const | seen |" in report
    for png in ("single.png", "multi.png", "single_seen.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 2 * (4 + 5) and json.loads(lines[0])["model"] == "const"


def test_cli_bad_input_exit_2(random_model, tokenizer, tmp_path, capsys):
    from kept.probe.cli import main

    model = save_model(random_model, tokenizer, tmp_path / "m")
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "relations.jsonl", [{"relation": "P19", "template": BORN}])
    write_jsonl(data / "P19.jsonl", [fact("Alice", "Paris"), '{"sub_label": "Bob", "obj_label": 3}'])
    assert main(["--model", str(model), "--data", str(data), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "P19.jsonl:2: 'obj_label' must be a non-empty string" in capsys.readouterr().err
    assert main(["--model", str(model), "--name", "x", "--name", "y", "--data", str(data),
                 "--out", str(tmp_path / "o")]) == 2
    assert "2 --name for 1 --model" in capsys.readouterr().err


def test_pooled_scoring_across_relations_equals_per_relation(random_model, tokenizer, probe_dir):
    """run_jobs sorts the queries of all relations together and routes log-probs back: same ranks."""
    probe = load_probe_set(probe_dir)
    scorer, builder = MaskedLMScorer(random_model, tokenizer, batch_size=3), QueryBuilder(tokenizer)
    options = ProbeOptions(queries="sentences", chunk_size=2, progress=False)     # chunks straddle relations
    template = ProbeOptions(chunk_size=2, progress=False)
    metrics, records = probe_relations(scorer, builder, probe, options)
    expected = []
    for run in (probe_single, probe_multi):
        for relation, facts in probe:
            expected += run(scorer, builder, relation, facts, ProbeOptions(queries="sentences", progress=False))[1]
    assert [(r["relation"], r["mode"], r["rank"]) for r in records] == \
        [(r["relation"], r["mode"], r["rank"]) for r in expected]
    assert metrics["single"]["relations"]["P19"]["skipped"] == {"no masked sentence with one [MASK]": 5}
    _, pooled = probe_relations(scorer, builder, probe[1:], template)
    alone = probe_single(scorer, builder, *probe[1], template)[1] + probe_multi(scorer, builder, *probe[1], template)[1]
    assert [r["rank"] for r in pooled] == [r["rank"] for r in alone] and len(pooled) == 4 + 5


def test_relation_without_usable_objects(random_model, tokenizer, tmp_path):
    write_jsonl(tmp_path / "relations.jsonl", [{"relation": "P1", "template": BORN}])
    write_jsonl(tmp_path / "P1.jsonl", [fact("Alice", "Zanzibar"), fact("Bob", "Qwerty Town")])   # all [UNK]
    scorer, builder = MaskedLMScorer(random_model, tokenizer), QueryBuilder(tokenizer)
    metrics, records = probe_relations(scorer, builder, load_probe_set(tmp_path), ProbeOptions(progress=False))
    assert records == [] and metrics["single"]["macro"] == {"relations": 0, "n": 0, "p@1": None, "p@10": None,
                                                          "mrr": None}
    assert metrics["multi"]["relations"]["P1"]["skipped"] == {"object has [UNK] or over 10 wordpieces": 2}


def test_read_common_vocab(tmp_path):
    from kept.probe.lama import read_common_vocab

    path = tmp_path / "common_vocab_lowercased.txt"
    path.write_text("paris\n\nlondon\n", encoding="utf-8")
    assert read_common_vocab(path) == ["paris", "london"]
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(ProbeDataError, match="common_vocab_lowercased.txt: common vocabulary file is empty"):
        read_common_vocab(path)
