"""Baidu ERNIE 1.0 masking: rates, whole units, 80/10/10, cap, determinism, the curriculum with workers."""

import dataclasses
import gzip
import json

import numpy as np
import pytest
import torch
from conftest import ROOT, need_data

from kept.data.examples import LinkedExample
from kept.masking import (
    LEVELS,
    MaskingCurriculum,
    MaskingVocab,
    UnitMaskingCollator,
    UnitSegmenter,
    char_spans_to_token_spans,
    learn_phrases,
    mask_units,
)

TREX = ROOT / "kg_data" / "trex" / "sentences.jsonl.gz"


@pytest.fixture(scope="module")
def tok():
    from transformers import BertTokenizer

    return BertTokenizer(vocab=str(need_data("vocab", "bert-base-uncased-vocab.txt")))


@pytest.fixture(scope="module")
def trex(tok) -> list[LinkedExample]:
    """T-REx sentences with word units, PMI phrases and the subject/object mentions as entity units."""
    with gzip.open(TREX, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    seg = UnitSegmenter(tok, phrases=learn_phrases([r["text"] for r in records]))
    out = []
    for r, ex in zip(records[:2000], seg([r["text"] for r in records[:2000]])):
        mentions = sorted({(r["sub_start"], r["sub_end"]), (r["obj_start"], r["obj_end"])})
        if len(mentions) == 2 and mentions[0][1] > mentions[1][0]:
            mentions = mentions[:1]                                  # overlapping mentions: keep one
        spans = char_spans_to_token_spans(np.array(mentions), ex.offsets)
        out.append(dataclasses.replace(ex, entity_spans=spans, entity_ids=np.arange(len(spans)),
                                       entity_scores=np.ones(len(spans))))
    return out


def reference_units(ex: LinkedExample, level: str, kept: int) -> list[list[int]]:
    """Units of one example as lists of padded positions, rebuilt with plain loops (token i sits at i + 1)."""
    owner: list[object] = list(range(kept))
    names = {"word": ["word_spans"], "phrase": ["word_spans", "phrase_spans"],
             "entity": ["word_spans", "entity_spans"]}.get(level, [])
    for name in names:
        for k, (s, e) in enumerate(getattr(ex, name)):
            for t in range(s, min(e, kept)):
                owner[t] = (name, k)
    units: dict[object, list[int]] = {}
    for t, o in enumerate(owner):
        units.setdefault(o, []).append(t + 1)
    return list(units.values())


def run_epochs(collator, examples, epochs=1, batch_size=32):
    """Yield (examples of the batch, batch) over a few passes."""
    for _ in range(epochs):
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            yield chunk, collator(chunk)


def outcome(batch, original, positions):
    """'mask' / 'random' / 'keep' for each predicted position."""
    out = []
    for b, t in positions:
        new = int(batch["input_ids"][b, t])
        out.append("mask" if new == 103 else "keep" if new == int(original[b, t]) else "random")
    return out


def test_token_level_rate_and_80_10_10(tok, trex):
    collator = UnitMaskingCollator(tok, max_length=128, level="token", seed=1)
    predicted = maskable = 0
    counts = {"mask": 0, "random": 0, "keep": 0}
    for chunk, batch in run_epochs(collator, trex, epochs=2):
        original, _ = collator.pad(chunk)
        labels = batch["labels"]
        sel = labels != -100
        assert torch.equal(labels[sel], torch.from_numpy(original)[sel])      # labels are the original ids
        predicted += int(sel.sum())
        maskable += int(batch["attention_mask"].sum()) - 2 * len(chunk)
        new, orig = batch["input_ids"][sel], torch.from_numpy(original)[sel]
        counts["mask"] += int((new == tok.mask_token_id).sum())
        counts["keep"] += int((new == orig).sum())
        counts["random"] += int(((new != orig) & (new != tok.mask_token_id)).sum())
    assert abs(predicted / maskable - 0.15) < 0.01
    assert abs(counts["mask"] / predicted - 0.8) < 0.02
    assert abs(counts["random"] / predicted - 0.1) < 0.015
    assert abs(counts["keep"] / predicted - 0.1) < 0.015


@pytest.mark.parametrize("level", ["word", "phrase", "entity"])
def test_units_are_masked_whole_at_rate(tok, trex, level):
    collator = UnitMaskingCollator(tok, max_length=64, level=level, seed=2)
    selected = total = tokens_selected = tokens = multi_selected = 0
    per_unit_outcome = {"mask": 0, "random": 0, "keep": 0}
    for chunk, batch in run_epochs(collator, trex):
        original, lengths = collator.pad(chunk)
        labels = batch["labels"].numpy()
        for b, ex in enumerate(chunk):
            for unit in reference_units(ex, level, int(lengths[b])):
                predicted = labels[b, unit] != -100
                assert predicted.all() or not predicted.any(), (level, unit)   # all or none
                total += 1
                tokens += len(unit)
                if predicted.all():
                    kinds = set(outcome(batch, original, [(b, t) for t in unit]))
                    assert len(kinds) == 1, kinds                            # one 80/10/10 draw per unit
                    per_unit_outcome[kinds.pop()] += 1
                    selected += 1
                    tokens_selected += len(unit)
                    multi_selected += len(unit) > 1
    assert abs(selected / total - 0.15) < 0.01
    assert abs(tokens_selected / tokens - 0.15) < 0.02
    assert multi_selected > 300                       # the check above saw many multi-token units
    assert abs(per_unit_outcome["mask"] / selected - 0.8) < 0.03
    assert abs(per_unit_outcome["random"] / selected - 0.1) < 0.025


def test_per_token_replacement_option_mixes_outcomes(tok, trex):
    collator = UnitMaskingCollator(tok, max_length=64, level="entity", seed=3, replace_per_unit=False)
    mixed = 0
    for chunk, batch in run_epochs(collator, trex[:800]):
        original, lengths = collator.pad(chunk)
        for b, ex in enumerate(chunk):
            for unit in reference_units(ex, "entity", int(lengths[b])):
                if (batch["labels"][b, unit] != -100).all():
                    mixed += len(set(outcome(batch, original, [(b, t) for t in unit]))) > 1
    assert mixed > 10


def test_special_tokens_and_padding_never_masked(tok, trex):
    collator = UnitMaskingCollator(tok, max_length=40, level="phrase", mask_prob=1.0, max_predictions=40)
    inside = LinkedExample("x", input_ids=[2023, tok.sep_token_id, 2003, tok.mask_token_id])   # specials in the text
    batch = collator([*trex[:7], inside])
    ids, labels, attn = batch["input_ids"], batch["labels"], batch["attention_mask"]
    lengths = attn.sum(1)
    for b in range(len(ids)):
        n = int(lengths[b])
        assert ids[b, 0] == tok.cls_token_id and ids[b, n - 1] == tok.sep_token_id
        assert (ids[b, n:] == tok.pad_token_id).all() and (labels[b, n:] == -100).all()
        assert labels[b, 0] == -100 and labels[b, n - 1] == -100
        if b < 7:
            assert (labels[b, 1 : n - 1] != -100).all()      # p = 1: every text token is predicted
    assert labels[7, 1:5].tolist() == [2023, -100, 2003, -100]
    assert ids.shape[1] == int(lengths.max())              # padded to the longest sequence


def test_cap_drops_whole_units(tok, trex):
    capped = UnitMaskingCollator(tok, max_length=64, level="entity", mask_prob=0.5, max_predictions=6, seed=4)
    free = UnitMaskingCollator(tok, max_length=64, level="entity", mask_prob=0.5, max_predictions=64, seed=4)
    at_cap = over = 0
    for (chunk, batch), (_, free_batch) in zip(run_epochs(capped, trex[:640]), run_epochs(free, trex[:640])):
        counts = (batch["labels"] != -100).sum(1)
        assert (counts <= 6).all()
        at_cap += int((counts >= 5).sum())
        over += int(((free_batch["labels"] != -100).sum(1) > 6).sum())
        _, lengths = capped.pad(chunk)
        for b, ex in enumerate(chunk):
            for unit in reference_units(ex, "entity", int(lengths[b])):
                predicted = batch["labels"][b, unit] != -100
                assert predicted.all() or not predicted.any()
    assert over > 100 and at_cap > 100                 # the cap was binding, and rows filled up to it


def test_unit_larger_than_the_cap_does_not_block_the_others(tok):
    ex = LinkedExample("t", input_ids=np.arange(2000, 2030), entity_spans=[[0, 20]], entity_ids=[1],
                       entity_scores=[1.0])           # one 20-token entity, then 10 one-token units
    collator = UnitMaskingCollator(tok, max_length=40, level="entity", mask_prob=1.0, max_predictions=6)
    for _ in range(20):
        labels = collator([ex] * 8)["labels"]
        assert ((labels != -100).sum(1) == 6).all()
        assert (labels[:, 1:21] == -100).all()


def test_default_cap(tok):
    assert UnitMaskingCollator(tok, max_length=128).max_predictions == 29
    assert UnitMaskingCollator(tok, max_length=512).max_predictions == 116


def test_deterministic_given_seed_and_dynamic(tok, trex):
    chunk = trex[:16]
    a, b = (UnitMaskingCollator(tok, level="phrase", seed=7) for _ in range(2))
    first_a, first_b = a(chunk), b(chunk)
    for key in first_a:
        assert torch.equal(first_a[key], first_b[key])
    assert torch.equal(a(chunk)["labels"], b(chunk)["labels"])          # same stream, step by step
    again = a(chunk)["labels"]
    assert not torch.equal(again, first_a["labels"])                   # a new mask every time
    other = UnitMaskingCollator(tok, level="phrase", seed=8)(chunk)["labels"]
    assert not torch.equal(other, first_a["labels"])


def test_truncation_clips_units(tok):
    ex = LinkedExample("t", input_ids=np.arange(2000, 2020), word_spans=[[0, 3], [3, 9], [9, 20]],
                       entity_spans=[[5, 15]], entity_ids=[1], entity_scores=[1.0])
    collator = UnitMaskingCollator(tok, max_length=10, level="entity", mask_prob=1.0, max_predictions=10)
    batch = collator([ex])
    assert batch["input_ids"].shape == (1, 10)
    units = collator.unit_ids([ex], *collator.pad([ex]))[0]
    # kept tokens 0..7 at positions 1..8: word [0, 3), word rest [3, 5), entity clipped to [5, 8)
    assert units[0] == -1 and units[9] == -1
    assert len(set(units[1:4])) == 1 and len(set(units[4:6])) == 1 and len(set(units[6:9])) == 1
    assert len(set(units[1:9])) == 3
    assert (batch["labels"][0, 1:9] == torch.arange(2000, 2008)).all()


def test_mask_units_rows_are_independent(tok):
    vocab = MaskingVocab.from_tokenizer(tok)
    assert tok.mask_token_id not in set(vocab.replacement_ids.tolist())
    input_ids = torch.arange(1000, 1000 + 4 * 50).view(4, 50)
    unit_ids = torch.arange(50).div(5, rounding_mode="floor").expand(4, 50).clone()   # units of 5, same ids per row
    unit_ids[:, 0] = -1
    gen = torch.Generator().manual_seed(0)
    rows_differ = 0
    for _ in range(20):
        masked, labels = mask_units(input_ids, unit_ids, vocab, mask_prob=0.5, generator=gen)
        sel = (labels != -100).view(4, 10, 5)[:, 1:]        # units 1..9 of each row
        assert (sel.all(-1) | ~sel.any(-1)).all()
        rows_differ += int(not (sel == sel[0]).all())
        assert (labels[:, 0] == -100).all() and (masked[:, 0] == input_ids[:, 0]).all()
    assert rows_differ > 15


def test_levels_and_schedule(tok):
    collator = UnitMaskingCollator(tok, level="basic")
    with pytest.raises(ValueError, match="unknown masking level"):
        collator.level = "sentence"
    for level in LEVELS:
        collator.level = level
        assert collator.level == level
    with pytest.raises(ValueError, match="distinct"):
        MaskingCurriculum({"phrase": 10, "entity": 10})
    with pytest.raises(ValueError, match="unknown masking level"):
        MaskingCurriculum({"sentences": 10})
    curriculum = MaskingCurriculum({"entity": 20, "phrase": 10})
    assert [curriculum.level_at(s) for s in (0, 9, 10, 19, 20, 10**6)] == \
        ["basic", "basic", "phrase", "phrase", "entity", "entity"]


# -- the curriculum -------------------------------------------------------------------------

def staged_examples(n: int) -> list[LinkedExample]:
    """16 single-token words; a phrase over the first 8 tokens; an entity over all 16."""
    rng = np.random.default_rng(0)
    return [LinkedExample("x", input_ids=rng.integers(2000, 20000, 16), word_spans=np.stack([np.arange(16),
                          np.arange(1, 17)], 1), phrase_spans=[[0, 8]], entity_spans=[[0, 16]], entity_ids=[1],
                          entity_scores=[1.0]) for _ in range(n)]


def detect_level(batch) -> str:
    """Which level built a batch of :func:`staged_examples` (at p = 0.5 chance agreement is ~1e-9)."""
    sel = batch["labels"][:, 1:17] != -100                          # [B, 16]
    whole = lambda part: bool((part.all(1) | ~part.any(1)).all())  # noqa: E731
    return "entity" if whole(sel) else "phrase" if whole(sel[:, :8]) else "basic"


def test_level_given_per_call_overrides_the_collator(tok):
    collator = UnitMaskingCollator(tok, max_length=32, level="basic", mask_prob=0.5, max_predictions=32, seed=5)
    batch = staged_examples(8)
    assert detect_level(collator(batch)) == "basic"
    assert detect_level(collator(batch, level="entity")) == "entity"
    assert detect_level(collator(batch, level="phrase")) == "phrase"
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(collator(batch, generator=g1)["labels"], collator(batch, generator=g2)["labels"])
