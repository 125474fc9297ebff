"""Tests of the Wikidata JSON dump reader (kept.kg.sources.wikidata)."""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import pytest

from kept.kg.sources import ReadContext, ReaderOptions, read
from kept.kg.sources.errors import BadLines, SourceError
from kept.kg.sources.records import Attribute, Entity, Relation, Triple

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not DATA.is_dir():
    pytest.skip(f"{DATA} not available", allow_module_level=True)
SAMPLE = DATA / "dumps" / "wikidata_latest-all_first50lines.json.gz"


def records(path, **options):
    return list(read(path, ctx=ReadContext(options=ReaderOptions(**options))))


def of_type(recs, cls):
    return [r for r in recs if isinstance(r, cls)]


@pytest.fixture(scope="module")
def sample():
    if not SAMPLE.exists():
        pytest.skip(f"{SAMPLE} not available")
    return records(SAMPLE)


# --- the real dump head -------------------------------------------------------


def test_sample_items_and_labels(sample):
    entities = of_type(sample, Entity)
    assert len(entities) == 49
    assert [e.key for e in entities[:4]] == ["Q22", "Q31", "Q1", "Q13"]
    assert entities[-1].key == "Q313"
    q22 = entities[0]
    assert (q22.label, q22.lang) == ("Scotland", "en")
    assert q22.description == "country in North-West Europe, part of the United Kingdom"
    assert ("Alba", "en") in q22.aliases and ("Caledonia", "en") in q22.aliases
    assert all(lang == "en" for _, lang in q22.aliases)
    by_key = {e.key: e for e in entities}
    assert by_key["Q64"].label == "Berlin" and by_key["Q175"].label == "São Paulo"
    assert not of_type(sample, Relation)  # the head holds items only


def independent_triples(ranks: str) -> set[tuple[str, str, str]]:
    """The item-valued main snaks of the sample under ``ranks``, computed with the stdlib json module."""
    expected = set()
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip().rstrip(",")
            if line in ("[", "]", ""):
                continue
            item = json.loads(line)
            for pid, statements in item["claims"].items():
                best = "preferred" if any(st["rank"] == "preferred" for st in statements) else "normal"
                for st in statements:
                    snak = st["mainsnak"]
                    kept = {"all": True, "truthy": st["rank"] == best}.get(ranks, st["rank"] != "deprecated")
                    if kept and snak["snaktype"] == "value":
                        value = snak["datavalue"]["value"]
                        if snak["datavalue"]["type"] == "wikibase-entityid" and value["id"].startswith("Q"):
                            expected.add((item["id"], pid, value["id"]))
    return expected


def test_sample_triples_match_independent_parse(sample):
    """Every non-deprecated item-valued main snak, computed with the stdlib json module."""
    triples = of_type(sample, Triple)
    assert len(triples) == len(set(triples))  # no repeated facts
    assert {(t.head, t.relation, t.tail) for t in triples} == independent_triples("non-deprecated")
    assert len(triples) == 1934
    assert Triple("Q22", "P31", "Q3336843") in triples
    assert Triple("Q64", "P31", "Q262166") not in triples  # deprecated


def test_sample_sitelinks(sample):
    attrs = of_type(sample, Attribute)
    assert Attribute("Q22", "sitelink:enwiki", "Scotland") in attrs
    assert {a.name for a in attrs} == {"sitelink:enwiki"}


def test_sample_ranks():
    """France (Q142) P35 'head of state': 1 preferred, 4 normal, 5 deprecated (Q12950 twice)."""

    def heads_of_state(ranks):
        triples = of_type(records(SAMPLE, ranks=ranks), Triple)
        return {t.tail for t in triples if t.head == "Q142" and t.relation == "P35"}

    assert heads_of_state("truthy") == {"Q157"}
    assert heads_of_state("non-deprecated") == {"Q157", "Q2038", "Q2124", "Q12950", "Q2185"}
    assert heads_of_state("all") == {"Q157", "Q2038", "Q2124", "Q12950", "Q2185", "Q329", "Q2105", "Q2042"}


@pytest.mark.parametrize("ranks", ["truthy", "all"])
def test_sample_ranks_match_independent_parse(ranks):
    triples = of_type(records(SAMPLE, ranks=ranks), Triple)
    assert len(triples) == len(set(triples))
    assert {(t.head, t.relation, t.tail) for t in triples} == independent_triples(ranks)


def test_sample_language_preference():
    recs = records(SAMPLE, languages=("zh", "zh-hans", "zh-cn", "en"))
    q22 = of_type(recs, Entity)[0]
    assert (q22.label, q22.lang) == ("蘇格蘭", "zh")
    assert q22.description == "英國的構成國"
    # zh-hans and zh-cn both say 苏格兰: one alias, from the preferred language
    assert [a for a in q22.aliases if a[0] == "苏格兰"] == [("苏格兰", "zh-hans")]
    assert ("Scotland", "en") in q22.aliases and ("Alba", "en") in q22.aliases
    assert q22.aliases.index(("苏格兰", "zh-hans")) < q22.aliases.index(("Scotland", "en"))
    q22_links = {a.name: a.value for a in of_type(recs, Attribute) if a.entity == "Q22"}
    # zh-hans / zh-cn have no Wikipedia of their own: no zh_hanswiki or zh_cnwiki lookups succeed
    assert q22_links == {"sitelink:zhwiki": "蘇格蘭", "sitelink:enwiki": "Scotland"}


def test_sample_properties_filter():
    recs = records(SAMPLE, properties=frozenset({"P31", "P17"}))
    triples = of_type(recs, Triple)
    assert {t.relation for t in triples} == {"P31", "P17"}
    assert Triple("Q22", "P31", "Q3336843") in triples
    assert len(of_type(recs, Entity)) == 49


def test_truncated_gzip(tmp_path):
    data = SAMPLE.read_bytes()
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="truncated or corrupt") as info:
        list(read(cut))
    assert str(cut) in str(info.value)


# --- hand-made dumps ------------------------------------------------------------


def snak(pid, target=None, snaktype="value", datatype="wikibase-item"):
    s = {"snaktype": snaktype, "property": pid, "datatype": datatype}
    if snaktype == "value":
        kind = "property" if target.startswith("P") else "item"
        value = {"entity-type": kind, "numeric-id": int(target[1:]), "id": target}
        s["datavalue"] = {"value": value, "type": "wikibase-entityid"}
    return s


def stmt(pid, target, rank="normal", **kw):
    return {"mainsnak": snak(pid, target, **kw), "type": "statement", "rank": rank}


def item(qid, label=None, claims=None, **extra):
    obj = {"type": "item", "id": qid, "labels": {}, "descriptions": {}, "aliases": {}, "claims": claims or {}}
    if label:
        obj["labels"]["en"] = {"language": "en", "value": label}
    obj.update(extra)
    return obj


ENTITIES = [
    item(
        "Q1",
        "one",
        {
            # P6: preferred and normal -> truthy keeps the preferred only
            "P6": [stmt("P6", "Q10", "preferred"), stmt("P6", "Q11"), stmt("P6", "Q12", "deprecated")],
            # P7: no preferred -> truthy keeps the normal ones
            "P7": [stmt("P7", "Q20"), stmt("P7", "Q21"), stmt("P7", "Q22", "deprecated")],
            "P8": [stmt("P8", None, snaktype="novalue"), stmt("P8", None, snaktype="somevalue")],
            "P9": [stmt("P9", "P31", datatype="wikibase-property")],
            "P10": [{"mainsnak": {"snaktype": "value", "property": "P10", "datatype": "string",
                                  "datavalue": {"value": "Q99", "type": "string"}}, "rank": "normal"}],
        },
        descriptions={"en": {"language": "en", "value": "first"}},
        aliases={"en": [{"language": "en", "value": "uno"}, {"language": "en", "value": "one"}]},
    ),
    {"type": "property", "id": "P6", "datatype": "wikibase-item",
     "labels": {"en": {"language": "en", "value": "head of government"}},
     "descriptions": {}, "aliases": {"en": [{"language": "en", "value": "premier"}]}, "claims": {}},
    {"type": "lexeme", "id": "L1", "lemmas": {}},
    # older dumps: "labels": [] for none, item values with numeric-id only
    item("Q2", claims={"P6": [{"mainsnak": {"snaktype": "value", "property": "P6", "datavalue": {
        "value": {"entity-type": "item", "numeric-id": 1}, "type": "wikibase-entityid"}}, "rank": "normal"}]},
         labels=[], aliases=[]),
]


def dump_bytes(entities=ENTITIES, closing=True):
    lines = [json.dumps(e, ensure_ascii=False) for e in entities]
    text = "[\n" + ",\n".join(lines) + ("\n]\n" if closing else ",\n")
    return text.encode("utf-8")


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_handmade_records(tmp_path):
    recs = records(write(tmp_path, "d.json", dump_bytes()))
    assert recs[0] == Entity("Q1", "one", (("uno", "en"),), "first", "en")
    assert Relation("P6", "head of government", (("premier", "en"),), None) in recs
    assert Entity("Q2") in recs
    assert Triple("Q2", "P6", "Q1") in recs
    triples = {(t.head, t.relation, t.tail) for t in of_type(recs, Triple)}
    assert triples == {("Q1", "P6", "Q10"), ("Q1", "P6", "Q11"), ("Q1", "P7", "Q20"), ("Q1", "P7", "Q21"),
                       ("Q2", "P6", "Q1")}
    assert not any(r.key.startswith("L") for r in recs if isinstance(r, (Entity, Relation)))


@pytest.mark.parametrize(
    "ranks, expected",
    [
        ("truthy", {"Q10", "Q20", "Q21"}),
        ("non-deprecated", {"Q10", "Q11", "Q20", "Q21"}),
        ("all", {"Q10", "Q11", "Q12", "Q20", "Q21", "Q22"}),
    ],
)
def test_handmade_ranks(tmp_path, ranks, expected):
    recs = records(write(tmp_path, "d.json", dump_bytes()), ranks=ranks)
    assert {t.tail for t in of_type(recs, Triple) if t.head == "Q1"} == expected


def test_unknown_ranks(tmp_path):
    with pytest.raises(ValueError, match="ranks"):
        records(write(tmp_path, "d.json", dump_bytes()), ranks="best")


def test_handmade_properties_filter(tmp_path):
    recs = records(write(tmp_path, "d.json", dump_bytes()), properties=frozenset({"P7"}))
    assert {t.tail for t in of_type(recs, Triple)} == {"Q20", "Q21"}


def test_closing_bracket_optional_and_bz2(tmp_path):
    closed = records(write(tmp_path, "a.json", dump_bytes(closing=True)))
    open_ended = records(write(tmp_path, "b.json", dump_bytes(closing=False)))
    path = tmp_path / "c.json.bz2"
    with bz2.open(path, "wb") as f:
        f.write(dump_bytes())
    assert closed == open_ended == records(path)
    assert len(closed) == 8  # Q1 + 4 triples, P6, Q2 + 1 triple


def test_only_brackets(tmp_path):
    assert records(write(tmp_path, "d.json", b"[\n]\n")) == []


def broken_dump(bad_line: bytes) -> bytes:
    good = dump_bytes().split(b"\n")
    return b"\n".join(good[:2] + [bad_line + b","] + good[2:])  # the bad line is line 3


@pytest.mark.parametrize(
    "bad, problem",
    [
        (b'{"type":"item","id":"Q5","labels":{', "invalid JSON"),
        (b'{"type":"item","id":"Q5","labels":{"en":{"language":"en","value":"\xff"}}}', "invalid UTF-8 at byte 66 of the line"),
        # in a part the reader skips (a language not asked for): still caught
        (b'{"type":"item","id":"Q5","labels":{"fr":{"language":"fr","value":"\xc3\x28"}}}', "UTF-8"),
        (b'["Q5"]', "not a Wikidata entity"),
        (b'{"id":"Q5"}', "not a Wikidata entity"),
        (b'{"type":"item","id":"Q5","claims":{"P1":[{"rank":"normal","type":"wikibase-entityid"}]}}',
         "malformed item Q5: claims.P1[0].mainsnak: expected an object, got nothing (no such key)"),
        (b'{"type":"item","id":"Q5","x":NaN}', "invalid JSON: NaN is not valid JSON"),
        (b'{"type":"item","id":"Q5","x":1e400}', "invalid JSON: NUMBER_ERROR"),  # Python's json says inf
        (b'{"type":"item","id":"Q5","x":' + b"[" * 1100 + b"]" * 1100 + b"}", "nested too deeply"),
        (b'{"type":5,"id":"Q5"}', "malformed entity Q5: type: expected a string, got a number"),
        (b'{"type":"item","id":"Q5","labels":5}', "malformed item Q5: labels: expected an object, got a number"),
        (b'{"type":"item","id":"Q5","labels":[1]}', "malformed item Q5: labels: expected an object, got an array"),
        (b'{"type":"item","id":"Q5","labels":{"en":null}}', "labels.en: expected an object, got null"),
        (b'{"type":"item","id":"Q5","labels":{"en":{"value":5}}}', "labels.en.value: expected a string, got a number"),
        (b'{"type":"property","id":"P5","labels":{"en":{"value":true}}}',
         "malformed property P5: labels.en.value: expected a string, got a boolean"),
        (b'{"type":"item","id":"Q5","aliases":{"en":{"value":"x"}}}', "aliases.en: expected an array, got an object"),
        (b'{"type":"item","id":"Q5","aliases":{"en":[{"value":"x"},{}]}}',
         "aliases.en[1].value: expected a string, got nothing (no such key)"),
        (b'{"type":"item","id":"Q5","descriptions":{"en":{"language":"en"}}}', "descriptions.en.value: expected a string"),
        (b'{"type":"item","id":"Q5","sitelinks":{"enwiki":{"site":"enwiki"}}}', "sitelinks.enwiki.title: expected a string"),
        (b'{"type":"item","id":"Q5","sitelinks":{"enwiki":"Berlin"}}', "sitelinks.enwiki: expected an object"),
        (b'{"type":"item","id":"Q5","claims":[1]}', "malformed item Q5: claims: expected an object, got an array"),
        (b'{"type":"item","id":"Q5","claims":{"P1":{}}}', "claims.P1: expected an array, got an object"),
        (b'{"type":"item","id":"Q5","claims":{"P1":[5]}}', "claims.P1[0]: expected an object, got a number"),
        (b'{"type":"item","id":"Q5","claims":{"P1":[{"mainsnak":{"snaktype":"novalue","datatype":5}}]}}',
         "claims.P1[0].mainsnak.datatype: expected a string, got a number"),
    ],
)
def test_bad_line_is_an_error(tmp_path, bad, problem):
    path = write(tmp_path, "d.json", broken_dump(bad))
    with pytest.raises(SourceError) as info:
        records(path)
    err = info.value
    assert err.line == 3
    assert problem in err.problem
    assert f"{path}:3:" in str(err)


@pytest.fixture(params=[1000, 2000, 20000], ids=lambda n: f"recursionlimit{n}")
def recursion_limit(request):
    """The reader's depth rule must not follow the recursion limit (torch.compile raises it to 2000)."""
    import sys
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(request.param)
    yield request.param
    sys.setrecursionlimit(saved)


BIG = b"123456789012345678901234567890"  # over 64 bits: simdjson hands the line to Python's json


@pytest.mark.parametrize("bad", [
    b'{"type":"item","id":"Q5","x":' + b"[" * 1100 + b"]" * 1100 + b"}",
    b'{"type":"item","id":"Q5","x":' + BIG + b',"y":' + b"[" * 1100 + b"]" * 1100 + b"}",
    b'{"type":"item","id":"Q5","x":' + b'[{"a":' * 600 + BIG + b"}]" * 600 + b"}",
], ids=["deep", "bigint-then-deep", "deep-bigint"])
def test_nesting_verdict_ignores_recursion_limit(tmp_path, recursion_limit, bad):
    import sys
    path = write(tmp_path, "d.json", broken_dump(bad))
    with pytest.raises(SourceError, match=r"d\.json:3: invalid JSON: nested too deeply \(over 1024 levels\)"):
        records(path)
    assert sys.getrecursionlimit() == recursion_limit  # restored


def test_deep_bigint_within_limit_reads_whatever_the_recursion_limit(tmp_path, recursion_limit):
    import sys
    line = b'{"type":"item","id":"Q5","x":' + b"[" * 1010 + BIG + b"]" * 1010 + b"}"
    recs = records(write(tmp_path, "d.json", broken_dump(line)))
    assert "Q5" in {r.key for r in of_type(recs, Entity)}
    assert sys.getrecursionlimit() == recursion_limit


def test_bad_line_skipped_within_budget(tmp_path):
    path = write(tmp_path, "d.json", broken_dump(b'{"type":"item","id":"Q5",'))
    bad = BadLines(limit=1)
    recs = list(read(path, ctx=ReadContext(bad=bad)))
    assert bad.count == 1 and bad.examples[0].startswith(f"{path}:3: invalid JSON")
    assert recs == records(write(tmp_path, "ok.json", dump_bytes()))


def test_empty_file(tmp_path):
    with pytest.raises(SourceError, match="empty"):
        records(write(tmp_path, "empty.json", b""))


def statement_json(snak: dict | None = None, rank: object = "normal", **fields) -> dict:
    """A statement of P1 pointing at Q7, with ``fields`` overriding keys of its main snak."""
    main = dict(snak or snak_json()) | fields
    return {"mainsnak": {k: v for k, v in main.items() if v is not None}, "rank": rank}


def snak_json() -> dict:
    return {"snaktype": "value", "property": "P1", "datatype": "wikibase-item",
            "datavalue": {"value": {"entity-type": "item", "numeric-id": 7, "id": "Q7"}, "type": "wikibase-entityid"}}


@pytest.mark.parametrize(
    "statement, problem",
    [
        (statement_json(rank=1), "claims.P1[1].rank: expected a string, got a number"),
        (statement_json(snaktype=None), "claims.P1[1].mainsnak.snaktype: expected a string, got nothing"),
        (statement_json(datavalue=None), "claims.P1[1].mainsnak.datavalue: expected an object (the snak has a value)"),
        (statement_json(datavalue={"value": {"id": "Q8"}}), "claims.P1[1].mainsnak.datavalue.type: expected a string"),
        (statement_json(datavalue={"value": {"id": "Q8"}, "type": None}),
         "claims.P1[1].mainsnak.datavalue.type: expected a string, got null"),
        (statement_json(datavalue={"value": "Q8", "type": "wikibase-entityid"}),
         "claims.P1[1].mainsnak.datavalue.value: expected an object, got a string"),
        (statement_json(datavalue={"value": {"id": 8}, "type": "wikibase-entityid"}),
         "claims.P1[1].mainsnak.datavalue.value.id: expected a string, got a number"),
        (statement_json(datavalue={"value": {"entity-type": "item", "numeric-id": "8"}, "type": "wikibase-entityid"}),
         "claims.P1[1].mainsnak.datavalue.value.numeric-id: expected an integer, got a string"),
        (statement_json(datavalue={"value": {"entity-type": 1, "numeric-id": 8}, "type": "wikibase-entityid"}),
         "claims.P1[1].mainsnak.datavalue.value.entity-type: expected a string, got a number"),
    ],
)
def test_bad_statement_is_an_error(tmp_path, statement, problem):
    """Every statement of an item-valued property is checked, not only the first."""
    entity = item("Q5", "five", {"P1": [statement_json(), statement]})
    path = write(tmp_path, "d.json", dump_bytes([entity]))
    with pytest.raises(SourceError) as info:
        records(path)
    assert info.value.line == 2
    assert info.value.problem.startswith("malformed item Q5: ")
    assert problem in info.value.problem


def test_statements_of_other_datatypes_are_not_walked(tmp_path):
    """A property whose first main snak declares a non-item datatype is skipped after that
    snak: its other statements are checked as JSON only (kept reads nothing from them)."""
    string_snak = {"snaktype": "value", "property": "P2", "datatype": "string",
                   "datavalue": {"value": "x", "type": "string"}}
    entity = item("Q5", "five", {"P2": [statement_json(string_snak), 5], "P1": [statement_json()]})
    recs = records(write(tmp_path, "d.json", dump_bytes([entity])))
    assert of_type(recs, Triple) == [Triple("Q5", "P1", "Q7")]


def test_novalue_and_somevalue_give_no_triple(tmp_path):
    claims = {"P1": [statement_json(snaktype="novalue", datavalue=None),
                     statement_json(snaktype="somevalue", datavalue=None), statement_json()]}
    recs = records(write(tmp_path, "d.json", dump_bytes([item("Q5", "five", claims)])))
    assert of_type(recs, Triple) == [Triple("Q5", "P1", "Q7")]


def test_integers_beyond_64_bits_read_through_python_json(tmp_path):
    """simdjson holds integers of at most 64 bits; such a line is valid JSON and reads the same."""
    plain = item("Q5", "five", {"P1": [statement_json()]})
    big = dict(plain, lastrevid=10**30)
    assert records(write(tmp_path, "a.json", dump_bytes([big]))) == records(write(tmp_path, "b.json", dump_bytes([plain])))
    old_style = statement_json(datavalue={"value": {"entity-type": "item", "numeric-id": 2**70},
                                          "type": "wikibase-entityid"})
    recs = records(write(tmp_path, "c.json", dump_bytes([item("Q5", "five", {"P1": [old_style]})])))
    assert Triple("Q5", "P1", f"Q{2**70}") in recs


def test_simdjson_parses_every_line_after_a_bad_one(tmp_path, monkeypatch):
    """One simdjson parser serves all lines; a line that failed deep in its claims must not
    leave it busy (the next parse would fail and fall back to Python's json)."""
    from kept.kg.sources import wikidata

    def no_fallback(line, exc):
        raise AssertionError(f"fell back to Python's json: {exc}")

    monkeypatch.setattr(wikidata, "_loads", no_fallback)
    bad = json.dumps(item("Q5", "five", {"P1": [statement_json(), statement_json(rank=1)]})).encode()
    path = write(tmp_path, "d.json", broken_dump(bad))
    bad_lines = BadLines(limit=1)
    recs = list(read(path, ctx=ReadContext(bad=bad_lines)))
    assert bad_lines.count == 1 and "claims.P1[1].rank" in bad_lines.examples[0]
    assert recs == records(write(tmp_path, "ok.json", dump_bytes()))
