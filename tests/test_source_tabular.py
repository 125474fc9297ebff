"""The tabular readers: K-BERT .spo, CN-DBpedia baike_triples, OpenKE benchmark directories."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path

import pytest

from kept.kg.sources import ReadContext, ReaderOptions, read
from kept.kg.sources.errors import BadLines, SourceError
from kept.kg.sources.records import NO_SPLIT, TEST, TRAIN, VALID, Attribute, Entity, Relation, Triple

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MEDICAL = DATA / "kg" / "Medical.spo"
HOWNET = DATA / "kg" / "HowNet.spo.gz"
CNDBPEDIA = DATA / "dumps" / "cndbpedia_baike_triples_sample.txt"
FB15K237 = DATA / "kge" / "FB15k-237"

pytestmark = pytest.mark.skipif(not DATA.exists(), reason=f"shared data not found at {DATA}")


def of_type(records, kind):
    return [r for r in records if isinstance(r, kind)]


def ctx(**options) -> ReadContext:
    return ReadContext(options=ReaderOptions(**options))


# --------------------------------------------------------------------------- .spo


def test_medical_spo_real_file():
    records = list(read(MEDICAL))
    triples = of_type(records, Triple)
    lines = MEDICAL.read_text(encoding="utf-8").splitlines()
    assert len(triples) == len(lines) == 13_864
    assert records[:4] == [
        Entity("眼睛发红", label="眼睛发红", lang=None),
        Entity("症状", label="症状", lang=None),
        Relation("类别", label="类别"),
        Triple("眼睛发红", "类别", "症状", NO_SPLIT),
    ]
    assert triples == [Triple(*line.split("\t")) for line in lines]
    names = {name for line in lines for name in line.split("\t")[::2]}
    entities = of_type(records, Entity)
    assert len(entities) == len({e.key for e in entities}) == len(names)
    assert of_type(records, Relation) == [Relation("类别", label="类别")]


def test_hownet_spo_through_gzip():
    records = list(read(HOWNET))
    triples = of_type(records, Triple)
    assert len(triples) == 52_576
    assert triples[0] == Triple("...", "义原", "标点")
    assert {t.relation for t in triples} == {"义原"}
    assert len(of_type(records, Relation)) == 1


def test_spo_properties_filter():
    assert list(read(MEDICAL, ctx=ctx(properties=frozenset({"no such predicate"})))) == []
    assert len(of_type(read(MEDICAL, ctx=ctx(properties=frozenset({"类别"}))), Triple)) == 13_864


def write_spo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "small.spo"
    path.write_text(text, encoding="utf-8")
    return path


def test_spo_two_fields_is_an_error_with_file_and_line(tmp_path):
    path = write_spo(tmp_path, "a\tr\tb\nc\td\ne\tr\tf\n")
    with pytest.raises(SourceError) as err:
        list(read(path))
    assert err.value.line == 2
    assert f"{path}:2:" in str(err.value)
    assert "expected 3 tab-separated fields (subject, predicate, object), got 2" in str(err.value)


def test_spo_bad_line_budget_skips_and_counts(tmp_path):
    path = write_spo(tmp_path, "a\tr\tb\nc\td\n\ne\tr\t \ne\tr\tf\n")
    with pytest.raises(SourceError) as err:  # two bad lines (2 and 4), budget 1; line 3 is blank
        list(read(path, ctx=ReadContext(bad=BadLines(limit=1))))
    assert err.value.line == 4 and "empty object field" in str(err.value)
    bad = BadLines(limit=2)
    triples = of_type(read(path, ctx=ReadContext(bad=bad)), Triple)
    assert triples == [Triple("a", "r", "b"), Triple("e", "r", "f")]
    assert bad.count == 2 and bad.examples[0].startswith(f"{path}:2:")


# --------------------------------------------------------------------------- CN-DBpedia


@pytest.fixture(scope="module")
def cndbpedia_records():
    return list(read(CNDBPEDIA))


def test_cndbpedia_markup_stripped_everywhere(cndbpedia_records):
    assert cndbpedia_records
    assert not [r for r in cndbpedia_records if "<a>" in repr(r) or "</a>" in repr(r)]


def test_cndbpedia_card_names_and_tags(cndbpedia_records):
    doctype = [r for r in cndbpedia_records if getattr(r, "key", getattr(r, "entity", None)) == "!DOCTYPE"]
    assert doctype[0] == Entity("!DOCTYPE", label="!DOCTYPE", lang="zh")
    (card,) = [r for r in doctype if isinstance(r, Entity) and r.description]
    assert card.description.startswith("！文档类型，一个文档类型标记是一种标准通用标记语言的文档类型声明")
    assert "定义（DTD）来解析文档。" in card.description
    assert Entity("!DOCTYPE", aliases=(("！文档类型", "zh"),)) in doctype
    assert Entity("!DOCTYPE", aliases=(("DOCument TYPE", None),)) in doctype
    assert Attribute("!DOCTYPE", "BaiduTAG", "科技") in doctype
    assert Attribute("!DOCTYPE", "BaiduTAG", "计算机学") in doctype
    # an alias equal to the page title is the label already
    assert not [r for r in cndbpedia_records if isinstance(r, Entity) and r.aliases == (('"1+8"时代广场', "zh"),)]
    # the alias keeps the link text: “<a>12380</a>”短信举报平台
    assert Entity('"12380"短信举报平台', aliases=(("“12380”短信举报平台", "zh"),)) in cndbpedia_records


def test_cndbpedia_default_edges_are_whole_links(cndbpedia_records):
    book = '"5·12"汶川特大地震四川灾区教育重建研究'
    assert of_type(cndbpedia_records, Triple) == [Triple(book, "出版社", "教育科学出版社")]
    assert of_type(cndbpedia_records, Relation) == [Relation("出版社", label="出版社")]
    assert Entity("教育科学出版社", label="教育科学出版社", lang="zh") in cndbpedia_records
    # links that are only part of the value stay attributes (markup stripped)
    assert Attribute('"3.27"国债期货风波事件', "地点", "上海证券交易所") in cndbpedia_records
    assert Attribute('"12380"短信举报平台', "内容", "短信（释义）“") in cndbpedia_records
    assert Attribute(book, "ISBN", "9787504154897") in cndbpedia_records
    # every subject is announced once, before its other records
    entities = [r.key for r in cndbpedia_records if isinstance(r, Entity) and r.label is not None]
    assert len(entities) == len(set(entities))
    subjects = {line.split("\t")[0] for line in CNDBPEDIA.read_text(encoding="utf-8").splitlines()}
    assert subjects <= set(entities)


def test_cndbpedia_edge_predicates(tmp_path):
    records = list(read(CNDBPEDIA, ctx=ctx(edge_predicates=frozenset({"地点", "作者"}))))
    triples = of_type(records, Triple)
    assert Triple('"3.27"国债期货风波事件', "地点", "上海证券交易所") in triples
    assert Triple('"3.1"班故事', "作者", "赵荔") in triples
    assert {t.relation for t in triples} == {"地点", "作者"}
    assert Attribute('"5·12"汶川特大地震四川灾区教育重建研究', "出版社", "教育科学出版社") in records
    assert [r.key for r in of_type(records, Relation)] == ["地点", "作者"]
    # properties drop edges only
    records = list(read(CNDBPEDIA, ctx=ctx(edge_predicates=frozenset({"地点"}), properties=frozenset())))
    assert not of_type(records, Triple) and not of_type(records, Relation)
    assert Attribute("!DOCTYPE", "BaiduTAG", "科技") in records


def test_cndbpedia_bad_lines(tmp_path):
    path = tmp_path / "baike_triples.txt"
    path.write_text("甲\t类型\t<a>乙</a>\n甲\t类型\n丙\t类型\t<a></a>\n", encoding="utf-8")
    with pytest.raises(SourceError) as err:
        list(read(path))
    assert err.value.line == 2 and "got 2" in str(err.value)
    bad = BadLines(limit=2)
    assert of_type(read(path, ctx=ReadContext(bad=bad)), Triple) == [Triple("甲", "类型", "乙")]
    assert bad.count == 2 and "empty object field" in bad.examples[1]


# --------------------------------------------------------------------------- OpenKE


def id_names(path: Path) -> list[str]:
    rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    names = [""] * len(rows)
    for name, i in rows:
        names[int(i)] = name
    return names


@pytest.fixture(scope="module")
def fb15k237():
    return list(read(FB15K237))


def test_openke_fb15k237_entities_and_relations_in_id_order(fb15k237):
    entities, relations = of_type(fb15k237, Entity), of_type(fb15k237, Relation)
    assert fb15k237[: len(entities)] == entities  # entities first, then relations, then triples
    assert fb15k237[len(entities) : len(entities) + len(relations)] == relations
    assert len(entities) == 14_541 and len(relations) == 237
    assert [e.key for e in entities] == id_names(FB15K237 / "entity2id.txt")
    assert [r.key for r in relations] == id_names(FB15K237 / "relation2id.txt")
    assert entities[0] == Entity("/m/027rn", label="Dominican Republic")
    assert entities[1].key == "/m/06cx9"
    assert all(e.label for e in entities)
    form_of_government = "/location/country/form_of_government"
    assert relations[0] == Relation(form_of_government, label="location country form of government")


def test_openke_fb15k237_triples(fb15k237):
    entities = [e.key for e in of_type(fb15k237, Entity)]
    relations = [r.key for r in of_type(fb15k237, Relation)]
    triples = of_type(fb15k237, Triple)
    by_split = {s: [t for t in triples if t.split == s] for s in (TRAIN, VALID, TEST)}
    assert [len(by_split[s]) for s in (TRAIN, VALID, TEST)] == [272_115, 17_535, 20_466]
    assert len(triples) == 272_115 + 17_535 + 20_466
    # train2id line "0 1 0" is head 0, tail 1, relation 0
    assert by_split[TRAIN][0] == Triple(entities[0], relations[0], entities[1], TRAIN)
    assert by_split[TRAIN][1] == Triple(entities[2], relations[1], entities[3], TRAIN)
    # test2id line "6180 2861 148", valid2id last line checked against the file
    assert by_split[TEST][0] == Triple(entities[6180], relations[148], entities[2861], TEST)
    h, t, r = map(int, (FB15K237 / "valid2id.txt").read_text().split()[-3:])
    assert by_split[VALID][-1] == Triple(entities[h], relations[r], entities[t], VALID)


def make_openke(
    root: Path,
    entities=("e0", "e1", "e2"),
    relations=("r0", "r1"),
    train="3\n0 1 0\n1 2 1\n2 0 0\n",
    valid: str | None = None,
    entity_text: str | None = None,
    train_name: str = "train2id.txt",
) -> Path:
    root.mkdir(exist_ok=True)
    entity_lines = "".join(f"{e}\t{i}\n" for i, e in enumerate(entities))
    relation_lines = "".join(f"{r} {i}\n" for i, r in enumerate(relations))  # space-separated, as some have
    (root / "entity2id.txt").write_text(f"{len(entities)}\n{entity_lines}")
    (root / "relation2id.txt").write_text(f"{len(relations)}\n{relation_lines}")
    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(Path(train_name).suffix, open)
    with opener(root / train_name, "wt") as f:
        f.write(train)
    if valid is not None:
        (root / "valid2id.txt").write_text(valid)
    if entity_text is not None:
        (root / "entity2text.txt").write_text(entity_text)
    return root


def test_openke_small_bz2_labels_and_splits(tmp_path):
    root = make_openke(
        tmp_path / "kg",
        train_name="train2id.txt.bz2",
        valid="1\n2 1 1\n\n",
        entity_text="e1\tEntity One\nnot_in_ids\tIgnored\ne0\tEntity Zero\n",
    )
    records = list(read(root))
    assert records == [
        Entity("e0", label="Entity Zero"),
        Entity("e1", label="Entity One"),
        Entity("e2"),
        Relation("r0"),
        Relation("r1"),
        Triple("e0", "r0", "e1", TRAIN),
        Triple("e1", "r1", "e2", TRAIN),
        Triple("e2", "r0", "e0", TRAIN),
        Triple("e2", "r1", "e1", VALID),
    ]
    kept = of_type(read(root, ctx=ctx(properties=frozenset({"r1"}))), Triple)
    assert kept == [Triple("e1", "r1", "e2", TRAIN), Triple("e2", "r1", "e1", VALID)]


def test_openke_count_mismatch(tmp_path):
    root = make_openke(tmp_path / "kg", train="4\n0 1 0\n1 2 1\n2 0 0\n")
    with pytest.raises(SourceError) as err:
        list(read(root))
    assert "train2id.txt" in str(err.value) and "says 4 triples, found 3" in str(err.value)
    root = make_openke(tmp_path / "kg2")
    (root / "entity2id.txt").write_text("4\ne0\t0\ne1\t1\ne2\t2\n")
    with pytest.raises(SourceError, match=r"entity2id\.txt: the first line says 4 entries, found 3"):
        list(read(root))


def test_openke_id_out_of_range_is_a_bad_line(tmp_path):
    root = make_openke(tmp_path / "kg", train="3\n0 1 0\n1 7 1\n2 0 0\n")
    with pytest.raises(SourceError) as err:
        list(read(root))
    assert err.value.line == 3 and f"{root / 'train2id.txt'}:3:" in str(err.value)
    assert "out of range" in str(err.value) and "'1 7 1'" in str(err.value)
    bad = BadLines(limit=1)
    triples = of_type(read(root, ctx=ReadContext(bad=bad)), Triple)
    assert triples == [Triple("e0", "r0", "e1", TRAIN), Triple("e2", "r0", "e0", TRAIN)]
    assert bad.count == 1


def test_openke_malformed_lines_across_batches(tmp_path, monkeypatch):
    from kept.kg.sources import openke

    monkeypatch.setattr(openke, "_CHUNK_LINES", 2)
    root = make_openke(tmp_path / "kg", train="5\n0 1 0\n1 2 1\n\n2 0\n2 0 x\n0 2 1\n")
    bad = BadLines(limit=2)
    triples = of_type(read(root, ctx=ReadContext(bad=bad)), Triple)
    assert triples == [
        Triple("e0", "r0", "e1", TRAIN),
        Triple("e1", "r1", "e2", TRAIN),
        Triple("e0", "r1", "e2", TRAIN),
    ]
    assert [e.split(":")[1] for e in bad.examples] == ["5", "6"]
    assert "expected 3 integer ids" in bad.examples[0]


def test_openke_duplicate_ids_and_names(tmp_path):
    root = make_openke(tmp_path / "kg")
    (root / "entity2id.txt").write_text("3\ne0\t0\ne1\t1\ne2\t1\n")
    with pytest.raises(SourceError) as err:
        list(read(root))
    assert err.value.line == 4 and "id 1 given twice (also on line 3)" in str(err.value)
    (root / "entity2id.txt").write_text("3\ne0\t0\ne1\t1\ne0\t2\n")
    with pytest.raises(SourceError, match="name 'e0' given twice"):
        list(read(root))
    (root / "entity2id.txt").write_text("3\ne0\t0\ne1\t1\ne2\t3\n")
    with pytest.raises(SourceError, match="id 3 out of range"):
        list(read(root))


def test_openke_missing_train(tmp_path):
    root = make_openke(tmp_path / "kg")
    (root / "train2id.txt").unlink()
    with pytest.raises(SourceError, match="without train2id.txt"):
        list(read(root))
