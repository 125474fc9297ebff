"""A clean seen/unseen split: no training sentence names both the subject and the object of an unseen fact."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from kept.probe.splits import NameIndex, clean_split

ROOT = Path(__file__).resolve().parents[1]


def test_name_index_matches_whole_words_case_folded():
    index = NameIndex({"f1": (["Paris"], ["France"]), "f2": (["Rome"], ["Italy"]), "f3": (["Par"], ["France"])})
    assert index.mentioned("PARIS is in france.") == {"f1"}          # "Par" is not a word of it
    assert index.mentioned("Paris and Italy") == set()              # each fact needs both of its names
    assert index.mentioned("Rome, Italy; Paris, France") == {"f1", "f2"}


def test_leaks_move_to_seen_until_none_is_left():
    sentences = {"a": ["Paris, the capital of France, lies on the Seine."],
                 "b": ["Paris is in France."],                      # named by a's sentence: b leaks
                 "c": ["The Seine flows through France and Le Havre."],   # named only by b's sentence
                 "d": ["Rome is in Italy."]}
    names = {"a": ({"Seine"}, {"Paris"}), "b": ({"Paris"}, {"France"}), "c": ({"Le Havre"}, {"Seine"}),
             "d": ({"Rome"}, {"Italy"})}
    seen, moved = clean_split(sentences, names, {"a"})
    # b leaks through a's sentence; then b's sentence names nothing of c or d, so they stay unseen
    assert moved == ["b"] and seen == {"a", "b"}
    sentences["b"].append("Le Havre is by the Seine.")
    seen, moved = clean_split(sentences, names, {"a"})
    assert moved == ["b", "c"] and seen == {"a", "b", "c"}           # the second round finds c


def test_the_shipped_sample_split_is_clean():
    with gzip.open(ROOT / "kg_data" / "trex" / "sentences.jsonl.gz", "rt", encoding="utf-8") as f:
        sentences = [json.loads(line) for line in f]
    import importlib.util

    spec = importlib.util.spec_from_file_location("study_data", ROOT / "experiments" / "compare_methods" / "study_data.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    by_fact = compare.sentences_by_fact(sentences)
    names = compare.fact_names(ROOT / "kg_data" / "trex" / "probe", sentences)
    facts = sorted(by_fact)
    drawn = set(facts[::5] + facts[1::5] + facts[2::5] + facts[3::5])      # 80 %
    seen, moved = clean_split(by_fact, names, drawn)
    assert moved, "the raw split leaks (the case this guards against)"
    index = NameIndex({f: names[f] for f in facts if f not in seen})
    assert not set().union(*(index.mentioned(s) for f in seen for s in by_fact[f]))
