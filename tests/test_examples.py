"""LinkedExample validation and the memory-mapped LinkedCorpus round trip."""

import numpy as np
import pytest

from kept.data.examples import LinkedCorpus, LinkedExample, write_corpus


def _example(i: int) -> LinkedExample:
    n = 5 + i
    return LinkedExample(
        text=f"text {i}", input_ids=np.arange(n) + 100 * i, offsets=np.stack([np.arange(n), np.arange(n) + 1], 1),
        word_spans=[[0, 2], [2, n]], phrase_spans=[[0, n]] if i % 2 else [],
        entity_spans=[[1, 3]] * (i % 3), entity_ids=[7 + i] * (i % 3), entity_scores=[0.5] * (i % 3))


def test_round_trip(tmp_path):
    examples = [_example(i) for i in range(7)]
    assert write_corpus(examples, tmp_path / "c", meta={"source": "unit"}) == 7
    corpus = LinkedCorpus(tmp_path / "c")
    assert len(corpus) == 7 and corpus.meta["source"] == "unit"
    assert corpus.meta["tokens"] == sum(len(e) for e in examples)
    for a, b in zip(examples, (corpus[i] for i in range(7))):
        assert a.text == b.text
        for name in ("input_ids", "offsets", "word_spans", "phrase_spans", "entity_spans", "entity_ids",
                     "entity_scores"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    with pytest.raises(IndexError):
        corpus[7]


def test_invalid_spans_rejected():
    with pytest.raises(ValueError, match="word_spans"):
        LinkedExample("x", input_ids=[1, 2], word_spans=[[1, 3]])
    with pytest.raises(ValueError, match="same length"):
        LinkedExample("x", input_ids=[1, 2], entity_spans=[[0, 1]], entity_ids=[], entity_scores=[])
