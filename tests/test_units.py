"""Masking units: wordpiece and jieba words, PMI phrases, spaCy noun chunks (on real sentences)."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, need_data

from kept.masking.phrases import PhraseTable, english_words, greedy_non_overlapping, learn_phrases
from kept.masking.units import (
    UnitSegmenter,
    basic_spans,
    batch_wordpiece_word_spans,
    char_spans_to_token_spans,
    continuation_table,
    jieba_word_spans,
    load_spacy_parser,
    wordpiece_word_spans,
)

TREX = ROOT / "kg_data" / "trex" / "sentences.jsonl.gz"


def trex_texts() -> list[str]:
    with gzip.open(TREX, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def book_reviews(n: int) -> list[str]:
    path = need_data("corpus", "zh", "book_review", "train.tsv.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        next(f)  # header
        return [line.rstrip("\n").split("\t", 1)[1] for _, line in zip(range(n), f)]


@pytest.fixture(scope="module")
def en_tok():
    from transformers import BertTokenizer

    return BertTokenizer(vocab=str(need_data("vocab", "bert-base-uncased-vocab.txt")))


@pytest.fixture(scope="module")
def zh_tok():
    from transformers import BertTokenizer

    return BertTokenizer(vocab=str(need_data("vocab", "bert-base-chinese-vocab.txt")))


@pytest.fixture(scope="module")
def trex_table():
    return learn_phrases(trex_texts(), min_count=5, threshold=0.5)


def assert_partition(spans: np.ndarray, n: int) -> None:
    """Spans are sorted, contiguous and cover tokens 0..n exactly."""
    assert spans.dtype == np.int32
    if n == 0:
        assert len(spans) == 0
        return
    assert spans[0, 0] == 0 and spans[-1, 1] == n
    assert np.all(spans[:, 0] < spans[:, 1])
    assert np.array_equal(spans[1:, 0], spans[:-1, 1])


def test_basic_spans():
    assert basic_spans(3).tolist() == [[0, 1], [1, 2], [2, 3]]
    assert basic_spans(0).shape == (0, 2)


def test_english_wordpiece_words(en_tok):
    texts = trex_texts()[:400]
    seg = UnitSegmenter(en_tok)
    examples = seg(texts)
    first = examples[0]   # "Louis Jules Trochu (...": Trochu is tr ##och ##u
    pieces = en_tok.convert_ids_to_tokens(first.input_ids.tolist())
    words = [pieces[s:e] for s, e in first.word_spans]
    assert words[:3] == [["louis"], ["jules"], ["tr", "##och", "##u"]]
    multi = 0
    for ex in examples:
        assert_partition(ex.word_spans, len(ex))
        pieces = en_tok.convert_ids_to_tokens(ex.input_ids.tolist())
        for s, e in ex.word_spans:
            assert not pieces[s].startswith("##") or s == 0
            assert all(p.startswith("##") for p in pieces[s + 1 : e])
            multi += e - s > 1
        assert len(ex.phrase_spans) == 0  # no phrase source given
    assert multi > 100
    table = continuation_table(en_tok)
    batch = batch_wordpiece_word_spans([ex.input_ids for ex in examples] + [np.zeros(0, np.int32)], table)
    for ex, spans in zip(examples, batch):
        assert np.array_equal(spans, wordpiece_word_spans(ex.input_ids, table))
    assert batch[-1].shape == (0, 2)


def test_char_spans_to_token_spans_by_first_character():
    offsets = np.array([[0, 2], [2, 5], [5, 6], [7, 9]])   # token 1 straddles the boundary at 3
    spans = char_spans_to_token_spans(np.array([[0, 3], [3, 6], [6, 7], [7, 9]]), offsets)
    assert spans.tolist() == [[0, 2], [2, 3], [3, 4]]       # the whitespace span [6, 7) has no token


def test_jieba_words_align_to_characters(zh_tok):
    import jieba

    texts = book_reviews(300)
    seg = UnitSegmenter(zh_tok, lang="zh")
    examples = seg(texts)
    checked = 0
    for text, ex in zip(texts, examples):
        assert_partition(ex.word_spans, len(ex))
        by_chars = {(int(ex.offsets[s, 0]), int(ex.offsets[e - 1, 1])) for s, e in ex.word_spans}
        for word, start, end in jieba.tokenize(text):
            if all("\u4e00" <= c <= "\u9fff" for c in word):   # a CJK word: one token per character
                assert (start, end) in by_chars, word
                checked += 1
    assert checked > 5000
    # a two-character word is one unit of two character tokens
    ends = np.cumsum([len(w) for w in jieba.lcut("我喜欢这本书")])
    spans = jieba_word_spans("我喜欢这本书", np.stack([np.arange(6), np.arange(1, 7)], axis=1))
    assert spans.tolist() == np.stack([ends - [len(w) for w in jieba.lcut("我喜欢这本书")], ends], 1).tolist()
    assert [1, 3] in spans.tolist()   # 喜欢


def test_pmi_phrases_from_trex(trex_table):
    table = trex_table
    for phrase in ("united states", "new york", "hong kong", "roman catholic"):
        assert phrase in table, phrase
        assert table.score(phrase) >= 0.5
    for not_phrase in ("of the", "in the", "was born", "the united"):
        assert not_phrase not in table
    # strong collocations that start or end with a stop word are not chunk-like units
    for edge in ("also known as", "is an american"):
        assert edge not in table
        assert edge in learn_phrases(trex_texts(), min_count=5, threshold=0.5, stop_words=frozenset())
    # counts are corpus counts, at least min_count
    assert min(count for _, count in table.phrases.values()) >= 5
    sentences = [english_words(t) for t in trex_texts()]
    for phrase in (("united", "states"), ("hong", "kong")):
        n = len(phrase)
        occurrences = sum(tuple(w[i : i + n]) == phrase for w in sentences for i in range(len(w) - n + 1))
        assert table.phrases[phrase][1] == occurrences
    assert max(len(p) for p in table.phrases) == 3


def test_longest_match():
    trex_table = learn_phrases(trex_texts(), min_count=5, threshold=0.5, stop_words=frozenset())
    sentences = [english_words("He was also known as the best known as a rule."),
                 english_words("Hong Kong and the United States."), [], ["united"]]
    matches = trex_table.match(sentences)
    words0 = sentences[0]
    found = [" ".join(words0[a:b]) for a, b in matches[0]]
    assert "also known as" in found            # the trigram wins over "also known" / "known as"
    assert "best known" in found and found.count("known as") == 0   # "known as" overlaps "best known"
    assert [" ".join(sentences[1][a:b]) for a, b in matches[1]] == ["hong kong", "united states"]
    assert matches[2].shape == (0, 2) and matches[3].shape == (0, 2)


def test_greedy_non_overlapping():
    starts = np.array([0, 1, 3, 4, 6, 8])
    ends = np.array([2, 3, 5, 6, 8, 9])
    assert greedy_non_overlapping(starts, ends).tolist() == [True, False, True, False, True, True]


def test_phrase_table_json_round_trip(trex_table, tmp_path):
    trex_table.save(tmp_path / "phrases.json")
    loaded = PhraseTable.load(tmp_path / "phrases.json")
    assert loaded.phrases.keys() == trex_table.phrases.keys()
    assert loaded.lang == "en" and loaded.min_count == 5
    sentence = [english_words("The New York Times is based in the United States.")]
    assert np.array_equal(loaded.match(sentence)[0], trex_table.match(sentence)[0])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="kept-phrases"):
        PhraseTable.load(tmp_path / "bad.json")


def test_segmenter_applies_phrases_as_whole_words(en_tok, trex_table, tmp_path):
    trex_table.save(tmp_path / "p.json")
    seg = UnitSegmenter(en_tok, phrases=tmp_path / "p.json")
    texts = trex_texts()[:600]
    examples = seg(texts)
    surfaces = set()
    for ex in examples:
        starts = set(ex.word_spans[:, 0].tolist()) | {len(ex)}
        for s, e in ex.phrase_spans:
            assert s in starts and e in starts
            inside = np.count_nonzero((ex.word_spans[:, 0] >= s) & (ex.word_spans[:, 1] <= e))
            assert inside >= 2
            surfaces.add(ex.text[ex.offsets[s, 0] : ex.offsets[e - 1, 1]].lower())
        assert np.all(ex.phrase_spans[1:, 0] >= ex.phrase_spans[:-1, 1])
    assert {"united states", "new york"} <= surfaces
    assert not any(s.startswith(("is ", "was ", "the ")) for s in surfaces)
    # add_units fills units of examples made elsewhere (ids + offsets)
    bare = [type(ex)(ex.text, ex.input_ids, offsets=ex.offsets) for ex in examples[:20]]
    for a, b in zip(seg.add_units(bare), examples[:20]):
        assert np.array_equal(a.word_spans, b.word_spans) and np.array_equal(a.phrase_spans, b.phrase_spans)


def test_chinese_pmi_phrases_over_jieba_words(zh_tok):
    texts = book_reviews(4000)
    table = learn_phrases(texts, min_count=5, threshold=0.5, lang="zh")
    assert "值得 一读" in table and "人物 塑造" in table
    assert "的 书" not in table
    seg = UnitSegmenter(zh_tok, lang="zh", phrases=table)
    examples = seg(texts[:2000])
    n_phrases = 0
    for ex in examples:
        starts = set(ex.word_spans[:, 0].tolist()) | {len(ex)}
        for s, e in ex.phrase_spans:
            assert s in starts and e in starts
            n_phrases += 1
    assert n_phrases > 200


def test_spacy_without_trained_pipeline_is_a_clear_error(en_tok, trex_table, tmp_path):
    import spacy

    with pytest.raises(ValueError, match="cannot load the spaCy pipeline 'en_core_web_sm'.*spacy download"):
        load_spacy_parser("en_core_web_sm")
    with pytest.raises(ValueError, match="cannot load"):
        UnitSegmenter(en_tok, spacy_model=Path("/nonexistent/pipeline"))
    with pytest.raises(ValueError, match="no dependency parser.*learn_phrases"):
        UnitSegmenter(en_tok, spacy_model=spacy.blank("en"))
    saved = spacy.blank("en")
    saved.add_pipe("sentencizer")
    saved.to_disk(tmp_path / "no_parser")
    with pytest.raises(ValueError, match=r"no dependency parser \(pipes: \['sentencizer'\]\)"):
        load_spacy_parser(tmp_path / "no_parser")
    # without a spaCy pipeline, phrases come from the PMI table
    ex = UnitSegmenter(en_tok, phrases=trex_table)("He moved to the United States.")[0]
    pieces = en_tok.convert_ids_to_tokens(ex.input_ids.tolist())
    assert [pieces[s:e] for s, e in ex.phrase_spans] == [["united", "states"]]


def test_spacy_noun_chunks_with_a_parser(en_tok):
    """The noun-chunk path, with a rule-based stand-in for a trained parser (none is installed)."""
    import spacy
    from spacy.language import Language

    parses = {"The Eiffel Tower stands in Paris.": (
        [2, 2, 3, 3, 3, 4, 3], ["det", "compound", "nsubj", "ROOT", "prep", "pobj", "punct"],
        ["DET", "PROPN", "PROPN", "VERB", "ADP", "PROPN", "PUNCT"])}

    @Language.component("kept_test_parser")
    def parser(doc):
        heads, deps, pos = parses[doc.text]
        for token, head, dep, tag in zip(doc, heads, deps, pos):
            token.head, token.dep_, token.pos_ = doc[head], dep, tag
        return doc

    nlp = spacy.blank("en")
    nlp.add_pipe("kept_test_parser", name="parser")
    ex = UnitSegmenter(en_tok, spacy_model=nlp)("The Eiffel Tower stands in Paris.")[0]
    pieces = en_tok.convert_ids_to_tokens(ex.input_ids.tolist())
    # "Paris" is a one-word chunk, not a phrase unit
    assert [pieces[s:e] for s, e in ex.phrase_spans] == [["the", "e", "##iff", "##el", "tower"]]
