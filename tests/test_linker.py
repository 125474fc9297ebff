"""The entity linker: candidates, overlaps, boundaries, disambiguation, alignment, cache, CLI.

Real data: the T-REx sample shipped in kg_data/trex (gold subject/object offsets), the
K-BERT HowNet and Medical KGs with Chinese book reviews and the medical NER corpus.
Hand-made stores check the rules one at a time.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, need_data

from kept.cli import main
from kept.data.examples import LinkedExample
from kept.data.linked import attach_entities, link_example
from kept.kg import open_store
from kept.kg.build import BuildOptions, build_store
from kept.kg.linking.alias_index import AliasIndex
from kept.kg.linking.disambiguation import DisambiguationConfig
from kept.kg.linking.linker import (
    EntityLinker,
    LinkerConfig,
    index_cache_dir,
    select_leftmost_longest,
)
from kept.kg.linking.textnorm import content_ids, token_id

VOCAB = ROOT.parent / "shared" / "data" / "vocab"
WD, WDT = "http://www.wikidata.org/entity/", "http://www.wikidata.org/prop/direct/"
LABEL, ALT = "http://www.w3.org/2000/01/rdf-schema#label", "http://www.w3.org/2004/02/skos/core#altLabel"

# entity: (label, aliases); edges (head, relation, tail); relation labels
TOY_ENTITIES = {
    "Q1": ("Paris", []), "Q2": ("France", ["French Republic"]), "Q3": ("Paris of Troy", ["Paris"]),
    "Q4": ("Troy", []), "Q5": ("Eiffel Tower", []), "Q6": ("Louvre", []), "Q7": ("Helen of Troy", ["Helen"]),
    "Q8": ("New York", []), "Q9": ("New York City", ["NYC"]), "Q10": ("city", []), "Q11": ("York", []),
    "Q12": ("United States", ["US", "USA"]), "Q13": ("The", ["it", "A"]), "Q14": ("1984", []),
    "Q15": ("Louis Jules", []), "Q16": ("Jules Trochu", []), "Q17": ("Priam", []), "Q18": ("Hector", []),
    "Q19": ("Mercury", []), "Q20": ("Freddie Mercury", ["Mercury"]),
    "Q21": ("南京", []), "Q22": ("市长", []), "Q23": ("江大桥", []), "Q24": ("长江大桥", []),
    "Q25": ("北京", []), "Q26": ("北京大学", []), "Q27": ("大学", []),
}
TOY_EDGES = [("Q1", "P17", "Q2"), ("Q1", "P31", "Q10"), ("Q1", "P1376", "Q2"), ("Q5", "P131", "Q1"),
             ("Q6", "P131", "Q1"), ("Q3", "P27", "Q4"), ("Q3", "P26", "Q7"), ("Q3", "P22", "Q17"),
             ("Q3", "P3373", "Q18"), ("Q9", "P17", "Q12"), ("Q19", "P31", "Q10"), ("Q20", "P27", "Q12"),
             ("Q26", "P131", "Q25"), ("Q24", "P131", "Q21")]
TOY_RELATIONS = {"P17": "country", "P31": "instance of", "P1376": "capital of", "P27": "country of citizenship",
                 "P131": "located in the administrative territorial entity", "P26": "spouse", "P22": "father",
                 "P3373": "sibling"}


def _lit(text: str) -> str:
    return json.dumps(text, ensure_ascii=False) + "@en"


def _write_toy(path: Path) -> Path:
    lines = [f"<{WD}{h}> <{WDT}{r}> <{WD}{t}> ." for h, r, t in TOY_EDGES]
    for q, (label, aliases) in TOY_ENTITIES.items():
        lines.append(f"<{WD}{q}> <{LABEL}> {_lit(label)} .")
        lines += [f"<{WD}{q}> <{ALT}> {_lit(a)} ." for a in aliases]
    lines += [f"<{WD}{p}> <{LABEL}> {_lit(label)} ." for p, label in TOY_RELATIONS.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    """A hand-made store: an ambiguous "Paris", nested names, an acronym, stop-word names, Chinese names."""
    work = tmp_path_factory.mktemp("toy")
    build_store([(_write_toy(work / "toy.nt"), None)], work / "store", BuildOptions(progress=False))
    return open_store(work / "store")


@pytest.fixture(scope="module")
def toy(toy_store):
    return EntityLinker.from_store(toy_store, cache=False)


def _keys(linker: EntityLinker, text: str) -> list[tuple[str, str]]:
    return [(m.surface, m.key) for m in linker.link(text)]


@pytest.fixture(scope="module")
def trex(tmp_path_factory):
    """The English KG made from the shipped T-REx sample, and its evidence sentences with gold offsets."""
    out = tmp_path_factory.mktemp("trex") / "store"
    build_store([(ROOT / "kg_data" / "trex" / "trex_facts.nt.gz", None)], out, BuildOptions(progress=False))
    with gzip.open(ROOT / "kg_data" / "trex" / "sentences.jsonl.gz", "rt", encoding="utf-8") as f:
        sentences = [json.loads(line) for line in f]
    return open_store(out), sentences


@pytest.fixture(scope="module")
def hownet_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("hownet") / "store"
    build_store([(need_data("kg", "HowNet.spo.gz"), None)], out, BuildOptions(progress=False))
    return open_store(out)


def _book_reviews(n: int) -> list[str]:
    with gzip.open(need_data("corpus", "zh", "book_review", "train.tsv.gz"), "rt", encoding="utf-8") as f:
        next(f)
        return [line.rstrip("\n").split("\t", 1)[1] for _, line in zip(range(n), f)]


# ---- candidates, overlaps and boundaries -----------------------------------------------------------
def test_word_boundaries_english(toy):
    assert _keys(toy, "Paris, France.") == [("Paris", "Q1"), ("France", "Q2")]
    assert _keys(toy, "Parisian cafes and Parisians; Yorkshire; NewYork; Troyes") == []
    assert _keys(toy, "(Paris)") == [("Paris", "Q1")]
    assert _keys(toy, "Paris-based") == [("Paris", "Q1")]        # '-' is a boundary


def test_longest_match_and_overlaps(toy):
    assert _keys(toy, "I love New York City.") == [("New York City", "Q9")]
    assert _keys(toy, "New York and York") == [("New York", "Q8"), ("York", "Q11")]
    # "Louis Jules" and "Jules Trochu" overlap: the leftmost wins, then the next match after it
    assert _keys(toy, "Louis Jules Trochu") == [("Louis Jules", "Q15")]
    assert _keys(toy, "General Jules Trochu") == [("Jules Trochu", "Q16")]
    # whitespace runs in text are not collapsed, but any single whitespace character matches a space
    assert _keys(toy, "New\tYork") == [("New\tYork", "Q8")]
    assert _keys(toy, "New  York") == [("York", "Q11")]


def test_select_leftmost_longest_arrays():
    starts, ends, keys = np.array([5, 0, 0, 3, 0, 8]), np.array([9, 4, 2, 6, 4, 10]), np.array([1, 2, 3, 4, 5, 6])
    spans, span_keys = select_leftmost_longest(starts, ends, keys)
    # (0, 4) twice (keys 2 and 5): one span with both keys; (3, 6) overlaps it; (5, 9) is next; (8, 10) overlaps
    assert spans.tolist() == [[0, 4], [5, 9]] and span_keys == [[2, 5], [1]]
    assert select_leftmost_longest(np.zeros(0, int), np.zeros(0, int), np.zeros(0, int))[0].shape == (0, 2)


def test_case_rules(toy, toy_store):
    assert _keys(toy, "the US army") == [("US", "Q12")]
    assert _keys(toy, "let us go to the usa") == []               # acronyms <= 4 chars keep their case
    assert _keys(toy, "paris and PARIS") == [("paris", "Q1"), ("PARIS", "Q1")]
    sensitive = EntityLinker.from_store(toy_store, LinkerConfig(case="sensitive"), cache=False)
    assert _keys(sensitive, "paris and Paris") == [("Paris", "Q1")]
    assert _keys(sensitive, "The US") == [("US", "Q12")]              # stop words stay out in every mode
    insensitive = EntityLinker.from_store(toy_store, LinkerConfig(case="insensitive"), cache=False)
    assert ("us", "Q12") not in _keys(insensitive, "let us go")   # "us" is a stop word once folded
    assert _keys(insensitive, "the usa") == [("usa", "Q12")]


def test_stop_words_min_length_and_numbers(toy, toy_store):
    assert _keys(toy, "The A it is") == []
    assert _keys(toy, "He read 1984.") == []
    numeric = EntityLinker.from_store(toy_store, LinkerConfig(keep_numeric=True), cache=False)
    assert _keys(numeric, "He read 1984.") == [("1984", "Q14")]
    short = EntityLinker.from_store(toy_store, LinkerConfig(min_alias_chars=6), cache=False)
    assert _keys(short, "Paris, France, New York") == [("France", "Q2"), ("New York", "Q8")]


def test_chinese_character_level_and_jieba_boundaries(toy_store):
    char_level = EntityLinker.from_store(toy_store, LinkerConfig(language="zh"), cache=False)
    assert _keys(char_level, "我在北京大学读书") == [("北京大学", "Q26")]
    # the classic: character-level longest match cuts 南京/市长/江大桥 ...
    assert _keys(char_level, "南京市长江大桥") == [("南京", "Q21"), ("市长", "Q22"), ("江大桥", "Q23")]
    # ... jieba segments 南京市/长江大桥, and only matches on its word boundaries are kept
    words = EntityLinker.from_store(toy_store, LinkerConfig(language="zh", jieba_boundaries=True), cache=False)
    assert _keys(words, "南京市长江大桥") == [("长江大桥", "Q24")]
    assert _keys(char_level, "我去了Paris北京") == [("Paris", "Q1"), ("北京", "Q25")]


# ---- disambiguation --------------------------------------------------------------------------------
def test_prior_picks_the_more_connected_entity(toy, toy_store):
    degree = toy_store.degree()
    city, hero = toy_store.entity_id("Q1"), toy_store.entity_id("Q3")
    assert degree[city] > degree[hero]
    (m,) = toy.link("Paris")
    assert m.key == "Q1" and 0.5 < m.score < 1.0
    # the label bonus breaks a tie of degrees: "Mercury" is Q19's label but only Q20's alias
    assert degree[toy_store.entity_id("Q19")] == degree[toy_store.entity_id("Q20")]
    assert _keys(toy, "Mercury") == [("Mercury", "Q19")]
    (france,) = toy.link("France")
    assert france.score == 1.0                                       # one candidate: no features


def test_context_overrides_the_prior(toy):
    text = "Paris, son of Priam and brother of Hector, took Helen to Troy."
    assert ("Paris", "Q3") in _keys(toy, text)
    assert _keys(toy, "Paris is the capital of France.")[0] == ("Paris", "Q1")


def test_threshold_drops_uncertain_mentions(toy_store):
    m, _ = EntityLinker.from_store(toy_store, cache=False).link("Paris and France")
    assert m.surface == "Paris" and m.score < 1
    keep = EntityLinker.from_store(toy_store, LinkerConfig(threshold=m.score - 0.01), cache=False)
    drop = EntityLinker.from_store(toy_store, LinkerConfig(threshold=m.score + 0.01), cache=False)
    assert len(keep.link("Paris and France")) == 2
    assert _keys(drop, "Paris and France") == [("France", "Q2")]


def test_coherence_with_transe_vectors(toy_store, tmp_path):
    import shutil

    store_dir = tmp_path / "store"
    shutil.copytree(toy_store.path, store_dir)
    store = open_store(store_dir)
    config = LinkerConfig(disambiguation=DisambiguationConfig(context_weight=0.0, coherence_weight=5.0))
    assert _keys(EntityLinker.from_store(store, config, cache=False), "Paris and Hector") == \
        [("Paris", "Q1"), ("Hector", "Q18")]                           # no vectors: the prior decides
    vectors = np.random.default_rng(0).normal(size=(store.num_entities, 16)).astype(np.float32)
    vectors[store.entity_id("Q3")] = vectors[store.entity_id("Q18")]  # Paris of Troy next to Hector
    (store_dir / "embeddings" / "transe").mkdir(parents=True)
    np.save(store_dir / "embeddings" / "transe" / "entity.npy", vectors)
    coherent = EntityLinker.from_store(open_store(store_dir), config, cache=False)
    assert _keys(coherent, "Paris and Hector") == [("Paris", "Q3"), ("Hector", "Q18")]
    # coherence only looks inside one text: linked together, separate texts keep their own answer
    batch = coherent.link_batch(["Paris and Hector", "Paris"])
    assert [int(e) for e in batch[0][1]] == [store.entity_id("Q3"), store.entity_id("Q18")]
    assert [int(e) for e in batch[1][1]] == [store.entity_id("Q1")]


def test_content_tokens():
    ids, starts = content_ids("The Eiffel Tower in PARIS: 北京大学 好")
    expected = {"eiffel": 4, "tower": 11, "paris": 20, "北京": 27, "京大": 28, "大学": 29, "好": 32}
    got = dict(zip(ids.tolist(), starts.tolist()))
    assert got == {token_id(t): s for t, s in expected.items()}


# ---- real data ---------------------------------------------------------------------------------------
def test_trex_sample_recall_and_precision(trex):
    store, sentences = trex
    linker = EntityLinker.from_store(store, cache=False)
    gold: dict[str, dict[tuple[int, int], set[str]]] = {}
    for r in sentences:
        spans = gold.setdefault(r["text"], {})
        spans.setdefault((r["sub_start"], r["sub_end"]), set()).add(r["sub_uri"])
        spans.setdefault((r["obj_start"], r["obj_end"]), set()).add(r["obj_uri"])
    texts = list(gold)
    linked = linker.link_batch(texts)
    in_store = hit = overlapping = correct = 0
    for text, (spans, entity, _) in zip(texts, linked):
        predicted = {(s, e): linker.describe(x)[0] for (s, e), x in zip(spans.tolist(), entity.tolist())}
        for (s, e), keys in gold[text].items():
            if linker.index.has_name(text[s:e]):
                in_store += 1
                hit += predicted.get((s, e)) in keys
        for (s, e), key in predicted.items():
            if any(gs < e and s < ge for gs, ge in gold[text]):
                overlapping += 1
                correct += key in gold[text].get((s, e), ())
    assert in_store > 0.95 * sum(map(len, gold.values()))
    assert hit / in_store >= 0.90              # 0.98 when written
    assert correct / overlapping >= 0.90       # 0.98 when written


def test_batch_equals_one_by_one(trex):
    store, sentences = trex
    linker = EntityLinker.from_store(store, cache=False)
    texts = [r["text"] for r in sentences[:300]] + ["", "no entity here at all"]
    for one, batched in zip([linker.link_spans(t) for t in texts], linker.link_batch(texts, batch_chars=5000)):
        for a, b in zip(one, batched):
            np.testing.assert_allclose(a, b, rtol=1e-5)


def _check_mentions(linker: EntityLinker, store, text: str, mentions) -> None:
    last_end = 0
    for m in mentions:
        assert text[m.start : m.end] == m.surface and m.start >= last_end
        last_end = m.end
        assert m.entity_id in (store.lookup(m.surface) or store.lookup(m.surface, ignore_case=True))


def test_chinese_book_reviews_hownet(hownet_store):
    reviews = _book_reviews(300)
    chars = EntityLinker.from_store(hownet_store, LinkerConfig(language="zh"), cache=False)
    words = EntityLinker.from_store(hownet_store, LinkerConfig(language="zh", jieba_boundaries=True), cache=False)
    from kept.kg.linking.linker import jieba_boundary_mask

    n_chars = n_words = off_boundary = 0
    for text, by_char, by_word in zip(reviews, chars.link_many(reviews), words.link_many(reviews)):
        _check_mentions(chars, hownet_store, text, by_char)
        _check_mentions(words, hownet_store, text, by_word)
        mask = jieba_boundary_mask(text)
        assert all(mask[m.start] and mask[m.end] for m in by_word)
        off_boundary += sum(not (mask[m.start] and mask[m.end]) for m in by_char)
        assert all(len(m.surface) >= 2 for m in by_char)
        n_chars, n_words = n_chars + len(by_char), n_words + len(by_word)
    assert n_words > len(reviews)              # HowNet covers common words: more than one link per review
    assert off_boundary > 0 and n_chars > n_words


def test_chinese_medical_ner_recall(medical_store):
    """Gold Symptom/Disease/BodyPart spans of the medical NER corpus whose surface is a Medical KG name."""
    linker = EntityLinker.from_store(medical_store, LinkerConfig(language="zh"), cache=False)
    texts, gold = [], []
    with open(need_data("corpus", "zh", "medical_ner", "dev.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            chars, tags = (part.split(" ") for part in line.rstrip("\n").split("\t"))
            if len(chars) != len(tags):
                continue
            text = "".join(chars)
            spans, start = [], None
            for i, tag in enumerate([*tags, "O"]):
                if start is not None and not tag.startswith("I-"):
                    spans.append((start, i))
                    start = None
                if tag.startswith("B-"):
                    start = i
            texts.append(text)
            gold.append([s for s in spans if linker.index.has_name(text[s[0] : s[1]])])
    found = total = 0
    for spans, (predicted, _, _) in zip(gold, linker.link_batch(texts)):
        predicted = set(map(tuple, predicted.tolist()))
        total += len(spans)
        found += sum(s in predicted for s in spans)
    assert total > 500
    assert found / total >= 0.85                # 0.95 when written


# ---- wordpieces --------------------------------------------------------------------------------------
def test_attach_entities_aligns_to_first_wordpiece():
    offsets = np.array([[0, 5], [6, 9], [9, 12], [13, 14], [15, 20]])     # "Hello wor|ld! x ....."
    ex = LinkedExample("Hello world! x abcde", np.arange(5), offsets=offsets)
    spans = np.array([[0, 5], [6, 12], [12, 13], [13, 20]])              # [12, 13) covers no token start
    ex = attach_entities(ex, spans, np.array([1, 2, 3, 4]), np.array([0.9, 0.8, 0.7, 0.6]))
    assert ex.entity_spans.tolist() == [[0, 1], [1, 3], [3, 5]]
    assert ex.entity_ids.tolist() == [1, 2, 4] and np.allclose(ex.entity_scores, [0.9, 0.8, 0.6])


@pytest.fixture(scope="module")
def en_tokenizer():
    from transformers import BertTokenizer

    return BertTokenizer(vocab=str(need_data("vocab", "bert-base-uncased-vocab.txt")))


def test_link_example_english(trex, en_tokenizer):
    store, sentences = trex
    linker = EntityLinker.from_store(store, cache=False)
    n_entities = 0
    for r in sentences[:200]:
        ex = link_example(r["text"], en_tokenizer, linker)
        tokens = en_tokenizer.convert_ids_to_tokens(ex.input_ids.tolist())
        # words partition the tokens; every word starts with a non-## piece and continues with ## pieces
        assert ex.word_spans[0, 0] == 0 and ex.word_spans[-1, 1] == len(ex)
        assert np.array_equal(ex.word_spans[1:, 0], ex.word_spans[:-1, 1])
        for a, b in ex.word_spans.tolist():
            assert not tokens[a].startswith("##") and all(t.startswith("##") for t in tokens[a + 1 : b])
        spans, _, _ = linker.link_spans(r["text"])
        assert len(ex.entity_spans) == len(spans) and len(ex.phrase_spans) == 0
        for (a, b), (s, e) in zip(ex.entity_spans.tolist(), spans.tolist()):
            assert ex.offsets[a, 0] == s and ex.offsets[b - 1, 1] == e    # first and last wordpiece
            n_entities += 1
    assert n_entities > 300


def test_link_example_chinese(toy_store):
    from transformers import BertTokenizer

    tokenizer = BertTokenizer(vocab=str(need_data("vocab", "bert-base-chinese-vocab.txt")))
    linker = EntityLinker.from_store(toy_store, LinkerConfig(language="zh"), cache=False)
    ex = link_example("我在北京大学读书", tokenizer, linker)
    assert len(ex) == 8                                                   # one token per character
    assert ex.word_spans.tolist() == [[0, 1], [1, 2], [2, 6], [6, 8]]     # jieba: 我/在/北京大学/读书
    assert ex.entity_spans.tolist() == [[2, 6]] and ex.entity_ids.tolist() == [toy_store.entity_id("Q26")]


# ---- cache and CLI -----------------------------------------------------------------------------------
def test_index_cache_round_trip(trex, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(trex[0].path, tmp_path / "store")
    store = open_store(tmp_path / "store")
    texts = [r["text"] for r in trex[1][:200]]
    built = EntityLinker.from_store(store)
    directory = index_cache_dir(store, LinkerConfig().index_options())
    assert (directory / "meta.json").exists() and (directory / "key_chars.npy").exists()
    assert not list(directory.glob("*.pkl"))                                  # nothing pickled
    assert [p.name for p in directory.parent.iterdir()] == [directory.name]   # no temp dirs left

    def no_build(*args, **kwargs):
        raise AssertionError("the index should come from the cache")

    monkeypatch.setattr(AliasIndex, "from_store", no_build)
    loaded = EntityLinker.from_store(store)
    for a, b in zip(built.link_batch(texts), loaded.link_batch(texts)):
        for x, y in zip(a, b):
            assert np.array_equal(x, y)
    assert index_cache_dir(store, LinkerConfig(case="sensitive").index_options()) != directory
    monkeypatch.undo()
    EntityLinker.from_store(store, rebuild=True)
    assert (directory / "meta.json").exists()


def test_cli_end_to_end(toy_store, tmp_path, capsys):
    import shutil

    shutil.copytree(toy_store.path, tmp_path / "store")
    store = str(tmp_path / "store")
    assert main(["link", "--store", store, "--text", "Paris, son of Priam, met Helen.", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(m["surface"], m["key"]) for m in out["mentions"]] == [("Paris", "Q3"), ("Priam", "Q17"),
                                                                   ("Helen", "Q7")]
    assert {"start", "end", "entity_id", "label", "score"} <= set(out["mentions"][0])

    (tmp_path / "in.txt").write_text("New York City\n\nthe US and France\n", encoding="utf-8")
    assert main(["link", "--store", store, "--input", str(tmp_path / "in.txt"), "--out", str(tmp_path / "o.jsonl"),
                 "--no-progress"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["New York City", "", "the US and France"]
    assert [[m["key"] for m in r["mentions"]] for r in rows] == [["Q9"], [], ["Q12", "Q2"]]

    with gzip.open(tmp_path / "in.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"id": 7, "body": "南京市长江大桥"}, ensure_ascii=False) + "\n")
    assert main(["link", "--store", store, "--input", str(tmp_path / "in.jsonl.gz"), "--field", "body", "--lang", "zh",
                 "--jieba-boundaries", "--out", str(tmp_path / "zh.jsonl"), "--no-progress"]) == 0
    (row,) = [json.loads(x) for x in (tmp_path / "zh.jsonl").read_text(encoding="utf-8").splitlines()]
    assert row["id"] == 7 and [m["surface"] for m in row["mentions"]] == ["长江大桥"]

    assert main(["link", "--store", store, "--input", str(tmp_path / "in.jsonl.gz"), "--out", str(tmp_path / "x.jsonl"),
                 "--no-progress"]) == 2
    assert "in.jsonl.gz:1: no string field 'text'" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()
    assert main(["link", "--store", store, "--input", str(tmp_path / "in.txt"), "--no-progress"]) == 2


def test_help_examples_run_and_the_chinese_one_finds_mentions(tmp_path, capsys, monkeypatch):
    """Every example in ``kept link --help`` runs as written (from the repository root), and the Chinese one
    links mentions on the shipped HowNet sample: a new user's first Chinese try must not come back empty."""
    import shlex

    with pytest.raises(SystemExit):
        main(["link", "--help"])
    epilog = capsys.readouterr().out.split("examples:", 1)[1]
    commands = [shlex.split(line.strip())[1:] for line in epilog.splitlines() if line.strip().startswith("kept ")]
    build, link = commands[-2:]
    assert build[:2] == ["kg", "build"] and link[0] == "link" and "--text" in link
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kg_data").symlink_to(ROOT / "kg_data")
    assert main([*build, "--no-progress"]) == 0
    capsys.readouterr()
    assert main([*link, "--no-progress"]) == 0
    mentions = json.loads(capsys.readouterr().out)["mentions"]
    assert {"苹果蛋糕", "苹果酒"} <= {m["surface"] for m in mentions}
