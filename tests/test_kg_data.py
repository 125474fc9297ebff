"""The sample data shipped in kg_data/: every KG builds, with the counts of its source files.

The expected numbers come from the files themselves (lines, unique names) or,
for kg_data/trex/, from the recipe kg_data/recipes/make_trex_sample.py (150
facts from each of the 20 LAMA T-REx relations that have a file). Only the
recipe re-run needs ../shared/data/lama and is skipped without it.
"""

import gzip
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from kept.kg import open_store
from kept.kg.build import BuildOptions, build_store

ROOT = Path(__file__).resolve().parents[1]
KG_DATA = ROOT / "kg_data"
TREX = KG_DATA / "trex"
LAMA = ROOT.parent / "shared" / "data" / "lama"
WD = "http://www.wikidata.org/entity/"


def _read_bytes(path: Path) -> bytes:
    """File content, decompressed when it is a .gz."""
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def _lines(path: Path) -> list[str]:
    return _read_bytes(path).decode("utf-8").splitlines()


def _build(tmp_path: Path, rel: str, name: str):
    report = build_store([(KG_DATA / rel, None)], tmp_path / name, BuildOptions(progress=False))
    return report, open_store(report.path)


# ---- the copies are the files listed in ../shared/data/SOURCES.md (md5 of the uncompressed content) ----
COPIES = {
    "kbert/HowNet.spo.gz": ("257af3404b83692ae1324d02fcb0921a", 52576),
    "kbert/Medical.spo": ("260bb2422e9363aba315a5bea4339bea", 13864),
    "wikidata/wikidata_latest-all_first50lines.json.gz": ("f2e945d77a2dba2472f76423c1c0884b", 50),
    "cndbpedia/baike_triples_sample.txt": ("2714424844912638f39fa53a61d3e34d", 186),
    "corpus/book_review_sample.tsv.gz": ("3d6e3c95a2629485178ff2eb27380ed0", 2000),
}


@pytest.mark.parametrize("rel", sorted(COPIES))
def test_copied_files_are_unchanged(rel):
    md5, n_lines = COPIES[rel]
    data = _read_bytes(KG_DATA / rel)
    assert hashlib.md5(data).hexdigest() == md5
    assert len(data.decode("utf-8").splitlines()) == n_lines


def test_every_shipped_file_is_documented_and_kg_data_is_not_a_package():
    sources = (KG_DATA / "SOURCES.md").read_text(encoding="utf-8")
    files = [p for p in KG_DATA.rglob("*") if p.is_file() and "__pycache__" not in p.parts
             and "_built" not in p.parts and p.name != "SOURCES.md"]
    assert files
    for p in files:
        assert p.relative_to(KG_DATA).as_posix() in sources, f"{p} is not in kg_data/SOURCES.md"
    # kg_data/ must stay out of the wheel (LAMA-derived files are CC BY-NC 4.0)
    assert not list(KG_DATA.rglob("__init__.py"))


def test_book_review_sample_is_label_tab_text():
    lines = _lines(KG_DATA / "corpus" / "book_review_sample.tsv.gz")
    assert lines[0] == "label\ttext_a"
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == 1999
    assert all(len(r) == 2 and r[0] in ("0", "1") and r[1] for r in rows)


# ---- K-BERT .spo ----------------------------------------------------------------------------------
@pytest.mark.parametrize("rel, n_triples, n_entities, relation", [
    ("kbert/Medical.spo", 13864, 13558, "类别"),
    ("kbert/HowNet.spo.gz", 52576, 46581, "义原"),
])
def test_kbert_kgs_build(tmp_path, rel, n_triples, n_entities, relation):
    rows = [line.split("\t") for line in _lines(KG_DATA / rel)]
    # the expected numbers are those of the file: no duplicates, one predicate
    assert len({tuple(r) for r in rows}) == n_triples
    assert len({x for r in rows for x in (r[0], r[2])}) == n_entities
    report, s = _build(tmp_path, rel, "kbert")
    assert (s.num_triples, s.num_entities, s.num_relations) == (n_triples, n_entities, 1)
    assert s.meta["counts"]["bad_lines_skipped"] == 0
    assert s.relation_key(0) == relation
    h, r, t = rows[0]
    rels, tails = s.neighbours(s.entity_id(h))
    assert s.entity_id(t) in tails.tolist()


# ---- Wikidata JSON head ---------------------------------------------------------------------------
def test_wikidata_head_builds(tmp_path):
    _, s = _build(tmp_path, "wikidata/wikidata_latest-all_first50lines.json.gz", "wikidata")
    c = s.meta["counts"]
    assert c["entities_labelled"] == 49  # 49 items in the 50 lines (the first is "[")
    # item-valued, non-deprecated statements with a value, one per (item, property, target)
    assert s.num_triples == 1934
    assert c["bad_lines_skipped"] == 0
    scotland = s.entity("Q22")
    assert scotland.label == "Scotland" and scotland.lang == "en"
    assert s.entity_id("Q22") in s.lookup("Scotland")


# ---- CN-DBpedia baike_triples head ----------------------------------------------------------------
def test_cndbpedia_sample_builds(tmp_path):
    rel = "cndbpedia/baike_triples_sample.txt"
    rows = [line.split("\t") for line in _lines(KG_DATA / rel)]
    subjects = {r[0] for r in rows}
    report, s = _build(tmp_path, rel, "cndbpedia")
    assert s.meta["sources"][0]["format"] == "cndbpedia"  # guessed from "baike_triples" in the name
    # by default only an object that is one whole <a> link is an edge: one row in this sample
    links = [r for r in rows if r[2].startswith("<a>") and r[2].endswith("</a>") and r[2].count("<a>") == 1]
    assert len(links) == 1 and s.num_triples == 1
    assert s.num_entities == len(subjects | {links[0][2][3:-4]})
    assert s.meta["counts"]["bad_lines_skipped"] == 0
    h, r, t = links[0]
    rels, tails = s.neighbours(s.entity_id(h))
    assert [s.relation_key(x) for x in rels.tolist()] == [r]
    assert s.entity_key(int(tails[0])) == t[3:-4]


# ---- LAMA T-REx sample ----------------------------------------------------------------------------
def _probe_facts() -> list[dict]:
    facts = []
    for path in sorted((TREX / "probe").glob("P*.jsonl.gz")):
        facts += [json.loads(line) for line in _lines(path)]
    return facts


def test_trex_probe_set_matches_the_recipe():
    relations = [json.loads(line) for line in _lines(TREX / "probe" / "relations.jsonl")]
    files = sorted(p.name.split(".")[0] for p in (TREX / "probe").glob("P*.jsonl.gz"))
    assert sorted(r["relation"] for r in relations) == files
    assert len(files) == 20
    facts = _probe_facts()
    assert len(facts) == 20 * 150
    assert all(set(f) == {"uuid", "obj_uri", "obj_label", "sub_uri", "sub_label", "predicate_id", "evidences"}
               for f in facts)


@pytest.fixture(scope="module")
def trex_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("trex") / "store"
    build_store([(TREX / "trex_facts.nt.gz", None)], out, BuildOptions(progress=False))
    return open_store(out)


def test_trex_kg_has_the_probe_facts(trex_store):
    s = trex_store
    facts = _probe_facts()
    spo = {(f["sub_uri"], f["predicate_id"], f["obj_uri"]) for f in facts}
    labels = {}
    for f in facts:
        labels[f["sub_uri"]] = f["sub_label"]
        labels[f["obj_uri"]] = f["obj_label"]
    relations = {json.loads(line)["relation"]: json.loads(line)["label"]
                 for line in _lines(TREX / "probe" / "relations.jsonl")}
    assert s.meta["sources"][0]["format"] == "ntriples"
    assert s.meta["counts"]["bad_lines_skipped"] == 0
    assert s.num_triples == len(spo) == 3000
    assert s.num_entities == len(labels) == 3563
    assert s.num_relations == len(relations) == 20
    got = {(s.entity_key(h), s.relation_key(r), s.entity_key(t)) for h, r, t in s.triples.tolist()}
    assert got == spo
    assert all(s.label(s.entity_id(q)) == label for q, label in labels.items())
    assert {s.relation_key(i): s.relation_label(i) for i in range(s.num_relations)} == relations
    # a known fact: Paul Mounsey (Q7152639) was born in (P19) Scotland (Q22)
    mounsey = s.entity("Q7152639")
    assert mounsey.label == "Paul Mounsey"
    rels, tails = s.neighbours(mounsey.id)
    assert [(s.relation_key(r), s.entity_key(t)) for r, t in zip(rels.tolist(), tails.tolist())] == [("P19", "Q22")]
    assert s.label(s.entity_id("Q22")) == "Scotland"


def test_trex_aliases_come_from_evidence_surfaces(trex_store):
    s = trex_store
    alt = [line for line in _lines(TREX / "trex_facts.nt.gz") if "skos/core#altLabel" in line]
    assert s.meta["counts"]["aliases"] == len(alt) == 1480
    paris = s.entity("Q90")
    assert paris.label == "Paris" and "Paris, France" in paris.aliases
    assert paris.id in s.lookup("Paris") and paris.id in s.lookup("Paris, France")
    # N-Triples escapes survive the round trip
    assert 'Lloyd "Tiny" Grimes' in s.entity("Q1375067").aliases
    assert all(len(s.aliases(i)) <= 5 for i in range(s.num_entities))


def test_trex_sentences_are_aligned():
    facts = {f["uuid"]: f for f in _probe_facts()}
    rows = [json.loads(line) for line in _lines(TREX / "sentences.jsonl.gz")]
    assert len(rows) == 5428
    per_fact = {}
    for r in rows:
        f = facts[r["fact"]]
        assert (r["sub_uri"], r["predicate"], r["obj_uri"]) == (f["sub_uri"], f["predicate_id"], f["obj_uri"])
        assert r["text"][r["sub_start"]:r["sub_end"]] == r["sub_surface"]
        assert r["text"][r["obj_start"]:r["obj_end"]] == r["obj_surface"]
        assert r["sub_end"] <= r["obj_start"] or r["obj_end"] <= r["sub_start"]
        assert "[MASK]" not in r["text"]
        per_fact.setdefault(r["fact"], set()).add(r["text"])
    assert max(map(len, per_fact.values())) == 3
    assert sum(map(len, per_fact.values())) == len(rows)  # no sentence twice for one fact


@pytest.mark.skipif(not (LAMA / "relations.jsonl").exists(), reason=f"{LAMA} not available")
def test_trex_recipe_reproduces_the_shipped_files(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("make_trex_sample", KG_DATA / "recipes" / "make_trex_sample.py")
    recipe = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no __pycache__ in kg_data/recipes
    spec.loader.exec_module(recipe)
    assert recipe.main(["--lama", str(LAMA), "--out", str(tmp_path)]) == 0
    assert "unique_facts" in capsys.readouterr().out
    made = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    shipped = sorted(p.relative_to(TREX).as_posix() for p in TREX.rglob("*") if p.is_file())
    assert made == shipped
    for rel in made:
        # compared decompressed: gzip bytes may differ between zlib builds, the content may not
        assert _read_bytes(tmp_path / rel) == _read_bytes(TREX / rel), rel
    # the probe lines are the original LAMA lines, byte for byte
    original = LAMA / "TREx" / "P19.jsonl"
    if original.exists():
        head = original.read_bytes().splitlines(keepends=True)[:150]
        assert _read_bytes(TREX / "probe" / "P19.jsonl.gz") == b"".join(head)
