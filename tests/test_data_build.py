"""Building linked corpora: entity spans on real T-REx sentences, workers, cache reuse, input formats."""

import gzip
import json

import numpy as np
import pytest
from conftest import ROOT

from kept.data.build import CorpusOptions, build_linked_corpus, read_texts
from kept.kg.build import BuildOptions, build_store
from kept.kg.sources.errors import SourceError

VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"
SENTENCES = ROOT / "kg_data" / "trex" / "sentences.jsonl.gz"


@pytest.fixture(scope="module")
def trex(tmp_path_factory):
    """The shipped T-REx store and its first 300 sentences (with gold mention offsets)."""
    root = tmp_path_factory.mktemp("trex")
    build_store([(ROOT / "kg_data" / "trex" / "trex_facts.nt.gz", None)], root / "store", BuildOptions(progress=False))
    with gzip.open(SENTENCES, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(300), f)]
    path = root / "sentences.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root / "store", path, rows


def test_entities_land_on_gold_mentions(trex, tmp_path):
    store, path, rows = trex
    corpus = build_linked_corpus(path, tmp_path / "c", VOCAB, store, CorpusOptions(min_phrase_count=3), workers=0,
                                 progress=False)
    assert len(corpus) == len(rows)
    from kept.kg import open_store

    s = open_store(store)
    hits = total = 0
    for i, row in enumerate(rows):
        ex = corpus[i]
        linked = {(int(ex.offsets[a, 0]), int(ex.offsets[b - 1, 1])): s.entity_key(e)
                  for (a, b), e in zip(ex.entity_spans, ex.entity_ids)}
        for who in ("sub", "obj"):
            total += 1
            hits += linked.get((row[f"{who}_start"], row[f"{who}_end"])) == row[f"{who}_uri"]
        assert (ex.word_spans[1:, 0] == ex.word_spans[:-1, 1]).all()    # words partition the tokens
    assert hits / total > 0.8, hits / total
    assert (tmp_path / "c" / "phrases.json").exists()


def test_workers_give_the_same_corpus_and_cache_is_reused(trex, tmp_path):
    store, path, _ = trex
    options = CorpusOptions(phrases=None)
    a = build_linked_corpus(path, tmp_path / "a", VOCAB, store, options, workers=0, progress=False)
    b = build_linked_corpus(path, tmp_path / "b", VOCAB, store, options, workers=2, progress=False)
    for name in ("input_ids", "offsets", "word_spans", "entity_spans", "entity_ids"):
        assert np.array_equal(a.arrays[name], b.arrays[name]), name
    stamp = (tmp_path / "a" / "input_ids.npy").stat().st_mtime_ns
    again = build_linked_corpus(path, tmp_path / "a", VOCAB, store, options, workers=0, progress=False)
    assert (tmp_path / "a" / "input_ids.npy").stat().st_mtime_ns == stamp and len(again) == len(a)
    with pytest.raises(FileExistsError, match="already exists"):  # other inputs: only with overwrite
        build_linked_corpus(path, tmp_path / "a", VOCAB, None, options, workers=0, progress=False)
    changed = build_linked_corpus(path, tmp_path / "a", VOCAB, None, options, workers=0, progress=False,
                                  overwrite=True)
    assert changed.meta["entities"] == 0    # other inputs: rebuilt


def test_read_texts_formats(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\ntwo\n", encoding="utf-8")
    assert list(read_texts(tmp_path / "a.txt")) == ["one", "two"]
    (tmp_path / "b.tsv").write_text("label\ttext_a\n1\tgood book\n0\tbad \"book\n", encoding="utf-8")
    assert list(read_texts(tmp_path / "b.tsv")) == ["good book", 'bad "book']
    (tmp_path / "c.jsonl").write_text('{"text": "x"}\n{"body": "y"}\n', encoding="utf-8")
    with pytest.raises(SourceError, match=r"c.jsonl:2: expected a JSON object with a 'text' field"):
        list(read_texts(tmp_path / "c.jsonl"))
    (tmp_path / "d.tsv").write_text("label\tbody\n1\tx\n", encoding="utf-8")
    with pytest.raises(SourceError, match="no text column"):
        list(read_texts(tmp_path / "d.tsv"))
