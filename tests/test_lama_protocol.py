"""kept probe --protocol lama: LAMA's own T-REx evaluation, checked by hand and against LAMA's algorithm."""

from __future__ import annotations

import pytest
import torch

from kept.probe.lama import load_probe_set
from kept.probe.lama_protocol import LAMA_VOCAB_DIR, default_common_vocab, distinct_facts
from kept.probe.metrics import lama_ranks, summarize
from kept.probe.probe import ProbeOptions, probe_relations, probe_single
from kept.probe.queries import QueryBuilder, fill_template
from kept.probe.scorers import MaskedLMScorer
from tests.test_probe import BORN, constant_model, fact, random_model, tokenizer, write_jsonl  # noqa: F401

#: london before new: under LAMA's rule their tie (both 4.0) goes to london
COMMON = ["london", "new", "paris", "rome", "berlin", "notaword"]


@pytest.fixture
def lama_dir(tmp_path):
    root = tmp_path / "lama"
    (root / "TREx").mkdir(parents=True)
    write_jsonl(root / "relations.jsonl", [{"relation": "P19", "template": BORN, "label": "born"},
                                           {"relation": "P20", "template": "[X] died in [Y] .", "label": "died"}])
    write_jsonl(root / "TREx" / "P19.jsonl", [
        fact("Alice", "Paris"), fact("Bob", "London"), fact("Carol", "Rome"), fact("Dave", "France"),
        fact("Eve", "New York"), fact("Alice", "Paris", uuid="again"), fact("Émile", "Berlin")])
    write_jsonl(root / "TREx" / "P20.jsonl", [fact("Alice", "London"), fact("Bob", "berlin")])
    return root / "TREx"


def test_lama_ranks_break_ties_in_column_order():
    scores = torch.tensor([[5.0, 4.0, 4.0, 2.0]])
    assert lama_ranks(scores.repeat(4, 1), torch.arange(4)).tolist() == [1, 2, 3, 4]
    assert summarize([1, 2, 1001], mrr_cutoff=1000)["mrr"] == pytest.approx((1 + 1 / 2) / 3)


def test_by_hand_with_a_constant_model(constant_model, tokenizer, lama_dir):  # noqa: F811
    scorer, builder = MaskedLMScorer(constant_model, tokenizer), QueryBuilder(tokenizer)
    options = ProbeOptions(protocol="lama", modes=("single",), common_vocab=COMMON, progress=False)
    (relation, facts), _ = load_probe_set(lama_dir, ["P19", "P20"])
    metrics, records = probe_single(scorer, builder, relation, facts, options)
    # distinct facts: the second Alice-Paris goes; France is not in COMMON; "New York" is two pieces.
    # paris 5 -> 1, london 4 (new 4 after it in COMMON) -> 2, rome 2 -> 5 (berlin 3 above it), berlin 3 -> 4
    assert [(r["obj_label"], r["rank"]) for r in records] == [("Paris", 1), ("London", 2), ("Rome", 5),
                                                              ("Berlin", 4)]
    assert metrics["p@1"] == 0.25 and metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 4) / 4)
    # kept's own protocol counts the tie against the gold: london -> 3
    kept = probe_single(scorer, builder, relation, facts, ProbeOptions(modes=("single",), common_vocab=COMMON,
                                                                        progress=False))[1]
    assert [r["rank"] for r in kept if r["obj_label"] == "London"] == [3]


def lama_reference(model, tok, probe_set, common):
    """LAMA's batch_eval_KB_completion + get_ranking, written plainly: per distinct (sub, obj), the template
    with [MASK], log-softmax at the mask, restricted to index_list, torch.topk, rank of the label."""
    vocab = tok.get_vocab()
    index_list = list(dict.fromkeys(vocab[t] for t in common if t in vocab))
    per_relation = {}
    for relation, facts in probe_set:
        pairs = list(dict.fromkeys((f.sub_label, f.obj_label) for f in facts))
        p1, mrr = [], []
        for sub, obj in pairs:
            obj = obj.lower()
            ids = tok(obj, add_special_tokens=False)["input_ids"]
            if any(w not in common for w in obj.split(" ")) or len(ids) != 1 or \
                    tok.convert_ids_to_tokens(ids[0]) != obj:
                continue
            text, _ = fill_template(relation.template, sub, 1, tok.mask_token)
            enc = tok(text, return_tensors="pt")
            with torch.no_grad():
                logits = model(**enc).logits[0]
            at = int((enc["input_ids"][0] == tok.mask_token_id).nonzero()[0])
            filtered = torch.log_softmax(logits[at], dim=-1)[index_list]
            _, order = torch.topk(filtered, k=min(1000, len(index_list)))
            rank = order.tolist().index(index_list.index(ids[0])) + 1
            p1.append(float(rank == 1))
            mrr.append(1 / rank)
        per_relation[relation.relation] = (sum(p1) / len(p1), sum(mrr) / len(mrr), len(p1))
    return per_relation


def test_matches_lamas_algorithm_on_a_random_model(random_model, tokenizer, lama_dir):  # noqa: F811
    common = ["london", "new", "paris", "rome", "berlin", "france", "city", "the", "york"]
    probe_set = load_probe_set(lama_dir, ["P19", "P20"])
    options = ProbeOptions(protocol="lama", modes=("single",), common_vocab=common, progress=False)
    metrics, _ = probe_relations(MaskedLMScorer(random_model, tokenizer), QueryBuilder(tokenizer), probe_set, options)
    reference = lama_reference(random_model, tokenizer, probe_set, common)
    for rel, (p1, mrr, n) in reference.items():
        got = metrics["single"]["relations"][rel]
        assert (got["n"], got["p@1"]) == (n, p1) and got["mrr"] == pytest.approx(mrr), rel
    assert metrics["single"]["macro"]["p@1"] == pytest.approx(sum(v[0] for v in reference.values()) / 2)
    with pytest.raises(ValueError, match="--protocol lama is LAMA's single-wordpiece"):
        probe_relations(MaskedLMScorer(random_model, tokenizer), QueryBuilder(tokenizer), probe_set,
                        ProbeOptions(protocol="lama", progress=False))


def test_shipped_common_vocabularies_and_distinct_facts(tokenizer):  # noqa: F811
    assert (LAMA_VOCAB_DIR / "common_vocab_cased.txt").exists()
    lowered = default_common_vocab(tokenizer)                     # an uncased tokenizer: the lowercased list
    assert len(lowered) == 22746 and "paris" in lowered and all(t == t.lower() for t in lowered[:2000])
    facts = [fact("a", "b"), fact("a", "b"), fact("a", "c")]
    from kept.probe.lama import Fact

    as_facts = [Fact("P1", f["sub_label"], f["obj_label"]) for f in facts]
    assert [(f.sub_label, f.obj_label) for f in distinct_facts(as_facts)] == [("a", "b"), ("a", "c")]


def test_cli_protocol_lama(random_model, tokenizer, lama_dir, tmp_path):  # noqa: F811
    import json

    from kept.probe.cli import main
    from tests.test_probe import save_model

    model = save_model(random_model, tokenizer, tmp_path / "bert")
    vocab = tmp_path / "common.txt"
    vocab.write_text("\n".join(COMMON) + "\n")
    assert main(["--model", str(model), "--data", str(lama_dir), "--out", str(tmp_path / "out"), "--protocol", "lama",
                 "--common-vocab", str(vocab), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["config"]["protocol"] == "lama" and list(metrics["models"]["bert"]["modes"]) == ["single"]


def test_uhn_string_match_and_person_name_filters(constant_model, tokenizer, lama_dir, tmp_path):  # noqa: F811
    from kept.probe.lama import Fact, Relation
    from kept.probe.lama_protocol import person_name_matches, string_match, uhn_filter

    assert string_match(Fact("P1", "Apple Inc.", "apple")) and not string_match(Fact("P1", "Alice", "Paris"))
    # the constant model's top 3 for any input: paris 5, then london and new (4): Paris and London are guessable
    scorer = MaskedLMScorer(constant_model, tokenizer)
    facts = [Fact("P19", "Alice Smith", "Paris"), Fact("P19", "Bob", "Rome"), Fact("P19", "Carol", "London")]
    assert person_name_matches("P19", facts, scorer, tokenizer) == [True, False, True]
    assert person_name_matches("P36", facts, scorer, tokenizer) == [False] * 3          # not a person relation
    rel = Relation("P19", "[X] was born in [Y] .", "born")
    probe_set = [(rel, [Fact("P19", "Paris Hilton", "Paris"), *facts])]
    kept_set, removed = uhn_filter(probe_set)
    assert [f.sub_label for f in kept_set[0][1]] == ["Alice Smith", "Bob", "Carol"]
    assert removed == {"P19": {"string_match": 1}}
    kept_set, removed = uhn_filter(probe_set, scorer, tokenizer)
    assert [f.sub_label for f in kept_set[0][1]] == ["Bob"] and removed == {"P19": {"string_match": 1, "person_name": 2}}
