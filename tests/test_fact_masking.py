"""Fact masking (kept.masking.facts): which spans are fact objects, and that they are masked whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kept.data.examples import LinkedExample
from kept.kg.build import BuildOptions, build_store
from kept.kg.store import open_store
from kept.masking.ernie import MaskingVocab, UnitMaskingCollator
from kept.masking.facts import FactPairs, fact_object_spans


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    src = tmp_path_factory.mktemp("spo") / "kg.spo"
    src.write_text("Paris\tcapital of\tFrance\nBerlin\tcapital of\tGermany\nParis\ttwinned with\tRome\n",
                   encoding="utf-8")
    out = tmp_path_factory.mktemp("store") / "kg"
    build_store([(src, None)], out, BuildOptions(progress=False))
    return open_store(out)


def example(store, spans: list[tuple[int, int]], keys: list[str], n_tokens: int = 10) -> LinkedExample:
    ids = np.asarray([store.entity_id(k) for k in keys], np.int64)
    return LinkedExample("x", np.arange(200, 200 + n_tokens), entity_spans=np.asarray(spans, np.int32).reshape(-1, 2),
                         entity_ids=ids, entity_scores=np.ones(len(ids), np.float32))


def test_pairs_are_the_store_triples_subject_object(store):
    pairs = FactPairs(store)
    e = store.entity_id
    assert pairs.contains(np.array([e("Paris"), e("Paris"), e("France")]),
                          np.array([e("France"), e("Rome"), e("Paris")])).tolist() == [True, True, False]


def test_only_objects_of_a_fact_with_a_linked_subject_are_spans(store):
    pairs = FactPairs(store)
    batch = [example(store, [(0, 1), (4, 6)], ["Paris", "France"]),     # France is Paris's object
             example(store, [(0, 2), (5, 6)], ["France", "Paris"]),     # the object first: still found
             example(store, [(1, 2), (3, 4)], ["Berlin", "France"]),    # no fact Berlin -> France
             example(store, [(0, 1), (8, 10)], ["Berlin", "Germany"])]  # object cut by the length
    rows, starts, ends = fact_object_spans(batch, np.array([10, 10, 10, 8]), pairs)
    # positions count [CLS] as 0
    assert list(zip(rows.tolist(), starts.tolist(), ends.tolist())) == [(0, 5, 7), (1, 1, 3)]


def test_collator_masks_fact_objects_whole_and_predicts_them(store):
    vocab = MaskingVocab(cls_id=1, sep_id=2, pad_id=0, mask_id=3, replacement_ids=torch.arange(10, 300))
    batch = [example(store, [(0, 1), (4, 6)], ["Paris", "France"])]
    plain = UnitMaskingCollator(vocab, max_length=16, level="token", mask_prob=0.0)
    facts = UnitMaskingCollator(vocab, max_length=16, level="token", mask_prob=0.0, facts=FactPairs(store),
                                fact_mask_prob=1.0)
    out, ref = facts(batch), plain(batch)
    assert (ref["labels"] == -100).all()
    assert out["input_ids"][0, 5:7].tolist() == [3, 3]                   # the object, all [MASK]
    assert out["labels"][0, 5:7].tolist() == [204, 205]
    assert (out["labels"][0, :5] == -100).all() and (out["labels"][0, 7:] == -100).all()
    assert out["input_ids"][0, 1].item() == 200                          # the subject stays
    with pytest.raises(ValueError, match="FactPairs"):
        UnitMaskingCollator(vocab, fact_mask_prob=0.5)


def test_data_modules_take_the_facts_of_the_corpus_store(store, tmp_path):
    from kept.data.examples import write_corpus
    from kept.train.data import PretrainDataModule

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(300)]) + "\n")
    write_corpus([example(store, [(0, 1), (4, 6)], ["Paris", "France"])], tmp_path / "linked", {"store": str(store.path)})
    write_corpus([example(store, [(0, 1)], ["Paris"])], tmp_path / "plain", {"store": None})
    dm = PretrainDataModule(str(tmp_path / "linked"), str(vocab), fact_mask_prob=1.0, val_fraction=0.0)
    assert dm.collator.facts is not None and len(dm.collator.facts.keys) == 3
    with pytest.raises(ValueError, match="records no KG store"):
        PretrainDataModule(str(tmp_path / "plain"), str(vocab), fact_mask_prob=1.0)
    assert PretrainDataModule(str(tmp_path / "plain"), str(vocab)).collator.facts is None   # off: no store needed
