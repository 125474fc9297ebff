"""RDF readers: the fast N-Triples parser against rdflib, term -> record mapping, Turtle/RDF-XML."""

from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import random
from pathlib import Path

import pytest
import rdflib
from rdflib.compare import isomorphic
from rdflib.exceptions import ParserError
from rdflib.plugins.parsers.ntriples import W3CNTriplesParser

from kept.kg.sources import ReadContext, ReaderOptions, get_reader, guess_format, read
from kept.kg.sources.errors import BadLines, SourceError
from kept.kg.sources.ntriples import iter_fast_ntriples, parse_ntriples_line
from kept.kg.sources.rdf import (
    Literal,
    RecordMapper,
    from_rdflib,
    iter_rdflib_ntriples,
    rdf_to_records,
    read_ntriples,
    read_rdfxml,
    read_turtle,
    wikidata_key,
)
from kept.kg.sources.rdf_mapping import iter_fast_records
from kept.kg.sources.records import Attribute, Entity, Relation, Triple

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WD_JSON = DATA / "dumps" / "wikidata_latest-all_first50lines.json.gz"
if not WD_JSON.exists():
    pytest.skip(f"shared data missing: {WD_JSON}", allow_module_level=True)

XSD = "http://www.w3.org/2001/XMLSchema#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
WD, WDT = "http://www.wikidata.org/entity/", "http://www.wikidata.org/prop/direct/"
EX = "http://example.org/"


def _load_bench_module():
    spec = importlib.util.spec_from_file_location("ntriples_data", ROOT / "bench" / "ntriples_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def wd_nt(tmp_path_factory) -> Path:
    """Wikidata-RDF-shaped N-Triples derived from the real JSON sample (gzip)."""
    out = tmp_path_factory.mktemp("wd") / "wikidata.nt.gz"
    n = _load_bench_module().wikidata_json_to_ntriples(WD_JSON, out)
    assert n > 90_000
    return out


class RecordingBadLines(BadLines):
    """BadLines that remembers every reported line number."""

    def __init__(self, limit: int = 10**9):
        super().__init__(limit=limit)
        self.lines: list[int | None] = []

    def report(self, path, line, problem):
        self.lines.append(line)
        super().report(path, line, problem)


def rdflib_reference(path: Path) -> list:
    """Plain rdflib: W3CNTriplesParser.parse on the (decompressed) file, literals as written."""

    class Sink:
        def __init__(self):
            self.triples = []

        def triple(self, s, p, o):
            self.triples.append((from_rdflib(s), from_rdflib(p), from_rdflib(o)))

    sink = Sink()
    logging.getLogger("rdflib.term").disabled = True  # it logs each literal it cannot convert
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            W3CNTriplesParser(sink).parse(f)
    finally:
        logging.getLogger("rdflib.term").disabled = False
    return sink.triples


def records_of(items) -> list:
    """A reader's output flattened (readers may yield lists of records)."""
    return [r for item in items for r in (item if type(item) is list else (item,))]


def assert_same_up_to_bnodes(ours: list, theirs: list) -> None:
    """Equal triple lists, where blank node labels may differ by a consistent bijection."""
    assert len(ours) == len(theirs)
    forward: dict[str, str] = {}
    backward: dict[str, str] = {}
    for a, b in zip(ours, theirs):
        for x, y in zip(a, b):
            if isinstance(x, str) and x.startswith("_:") and isinstance(y, str) and y.startswith("_:"):
                assert forward.setdefault(x, y) == y and backward.setdefault(y, x) == x, (a, b)
            else:
                assert x == y and type(x) is type(y), (a, b)


def _to_rdflib(term):
    if isinstance(term, Literal):
        return rdflib.Literal(term.value, lang=term.lang, datatype=term.datatype, normalize=False)
    if term.startswith("_:"):
        return rdflib.BNode(term[2:])
    return rdflib.URIRef(term)


# --- the fast parser is rdflib's parser -------------------------------------------------


@pytest.mark.slow
def test_fast_equals_rdflib_on_wikidata_ntriples(wd_nt, monkeypatch):
    monkeypatch.setattr(rdflib, "NORMALIZE_LITERALS", False)
    ours = list(iter_fast_ntriples(wd_nt, ReadContext()))
    assert_same_up_to_bnodes(ours, rdflib_reference(wd_nt))
    literals = [o for _, _, o in ours if isinstance(o, Literal)]
    assert any(o.lang == "en-gb" for o in literals)
    assert any(o.datatype == XSD + "decimal" and o.value.startswith("+") for o in literals)
    assert any(o.datatype == XSD + "dateTime" for o in literals)
    assert any(o.startswith("_:") for _, _, o in ours if isinstance(o, str))


EDGE_LINES = [
    "# a comment line",
    "   \t# an indented comment",
    "",
    "   ",
    f"<{EX}s> <{EX}p> <{EX}o> .",
    f'<{EX}s>\t<{EX}p>\t"tab separated"\t.',
    f'<{EX}s> <{EX}p> "q \\"x\\" b \\\\ t \\t n \\n r \\r b \\b f \\f a \\\' end" .',
    f'<{EX}s> <{EX}p> "u \\u00e9 \\U0001F600 raw é 中文 \\x unknown" .',
    f'<{EX}s> <{EX}p> "colour"@en-GB .',
    f'<{EX}s> <{EX}p> "Farbe"@DE .',
    f'<{EX}s> <{EX}p> "x"@zh-Hant-TW .',
    f'<{EX}s> <{EX}p> "01"^^<{XSD}integer> .',
    f'<{EX}s> <{EX}p> "+5295000"^^<{XSD}decimal> .',
    f'<{EX}s> <{EX}p> "TRUE"^^<{XSD}boolean> .',
    f'<{EX}s> <{EX}p> "  a   b  "^^<{XSD}token> .',
    f'<{EX}s> <{EX}p> "a\\tb"^^<{XSD}normalizedString> .',
    f'<{EX}s> <{EX}p> "x"^^<{EX}\\u0041type> .',
    f'<{EX}s> <{EX}p> "" .',
    f'<{EX}s> <{EX}p> ""@en .',
    f"_:b1 <{EX}p> _:b2 .",
    f"_:b.1 <{EX}p> _:b1.",
    f"<{EX}\\u00E9t\\u00E9> <{EX}p> <{EX}o#frag> .",
    f"<{EX}s> <{EX}p> <{EX}o> . # trailing comment",
    f"<{EX}s> <{EX}p> <{EX}o>.",
    f"  <{EX}s>   <{EX}p>   <{EX}o>   .   ",
    f'<urn:isbn:0451450523> <{EX}p> "urn" .',
    f"<a b:c> <{EX}p> <{EX}o> .",
]


@pytest.fixture()
def edge_nt(tmp_path) -> Path:
    path = tmp_path / "edge.nt"
    body = "\n".join(EDGE_LINES).encode("utf-8")
    # a CRLF line, a bare CR between two triples, no newline at the end
    body += (
        f"\r\n<{EX}s> <{EX}p> <{EX}crlf> .\r\n<{EX}a> <{EX}p> <{EX}b> .\r<{EX}c> <{EX}p> <{EX}d> .".encode()
    )
    path.write_bytes(body)
    return path


def test_fast_equals_rdflib_on_edge_cases(edge_nt, monkeypatch):
    monkeypatch.setattr(rdflib, "NORMALIZE_LITERALS", False)
    ours = list(iter_fast_ntriples(edge_nt, ReadContext()))
    theirs = rdflib_reference(edge_nt)
    assert_same_up_to_bnodes(ours, theirs)
    assert ours == list(iter_rdflib_ntriples(edge_nt, ReadContext()))  # labels kept by both engines
    graph, mine = rdflib.Graph(), rdflib.Graph()
    for s, p, o in rdflib.Graph().parse(edge_nt, format="nt"):
        if s != rdflib.URIRef("a b:c"):  # rdflib's canonical hashing cannot serialise that IRI
            graph.add((s, p, o))
    for triple in ours:
        if triple[0] != "a b:c":
            mine.add(tuple(_to_rdflib(t) for t in triple))
    assert len(graph) == len(mine) > 20 and isomorphic(graph, mine)

    objects = [o for _, _, o in ours]
    assert Literal("colour", "en-GB", None) in objects  # language tag case kept
    assert Literal("Farbe", "DE", None) in objects
    assert Literal("01", None, XSD + "integer") in objects  # lexical forms as written
    assert Literal("+5295000", None, XSD + "decimal") in objects
    assert Literal("a b", None, XSD + "token") in objects  # rdflib's whitespace facet
    assert Literal("a b", None, XSD + "normalizedString") in objects
    assert Literal("x", None, EX + "Atype") in objects
    assert Literal("", None, None) in objects
    assert Literal('q "x" b \\ t \t n \n r \r b \b f \f a \' end', None, None) in objects
    assert Literal("u é \U0001f600 raw é 中文 \\x unknown", None, None) in objects
    assert ("_:b1", EX + "p", "_:b2") in ours and ("_:b.1", EX + "p", "_:b1") in ours
    assert (EX + "été", EX + "p", EX + "o#frag") in ours
    assert ("a b:c", EX + "p", EX + "o") in ours
    assert (EX + "c", EX + "p", EX + "d") in ours and (EX + "s", EX + "p", EX + "crlf") in ours
    assert all(type(t) is str for s, p, o in ours for t in (s, p) + ((o,) if isinstance(o, str) else ()))


def test_rdflib_default_normalises_and_the_engine_restores_the_flag(edge_nt):
    assert rdflib.NORMALIZE_LITERALS is True
    normalised = [o for _, _, o in rdflib_reference(edge_nt) if isinstance(o, Literal)]
    assert Literal("1", None, XSD + "integer") in normalised  # why the engines switch it off
    assert Literal("5295000", None, XSD + "decimal") in normalised
    assert Literal("01", None, XSD + "integer") in [
        o for _, _, o in iter_rdflib_ntriples(edge_nt, ReadContext())
    ]
    assert rdflib.NORMALIZE_LITERALS is True


BAD_LINES = [
    f"<{EX}a> <{EX}b> .",
    f"<{EX}a> <{EX}b> <{EX}c>",
    f"<a> <{EX}b> <{EX}c> .",
    f'"lit" <{EX}b> <{EX}c> .',
    f'<{EX}a> "p" <{EX}c> .',
    f'<{EX}a> <{EX}b> "unterminated .',
    f'<{EX}a> <{EX}b> "x"@en^^<{EX}t> .',
    f"<{EX}a> <{EX}b> <{EX}c> . garbage",
    f"<{EX}a><{EX}b><{EX}c> .",
    f'<{EX}a> <{EX}b> "\\U00110000" .',
    f"<http://a b> <{EX}b> <{EX}c> .",
    f'<{EX}a> <{EX}b> "x"@ .',
    f"_:a. <{EX}b> <{EX}c> .",
    f"<{EX}a> <{EX}b> <{EX}c> .\x0c",
    f"<{EX}a>\u00a0<{EX}b> <{EX}c> .",
]


@pytest.mark.parametrize("line", BAD_LINES)
def test_malformed_lines_are_rejected_like_rdflib(line):
    with pytest.raises(ValueError, match=r"\S"):
        parse_ntriples_line(line)
    with pytest.raises((ParserError, ValueError)):
        W3CNTriplesParser().parsestring(line + "\n")


def test_parse_ntriples_line_basics():
    assert parse_ntriples_line("") is None
    assert parse_ntriples_line("  # note") is None
    assert parse_ntriples_line(f'<{WD}Q42> <{RDFS}label> "Douglas Adams"@en .') == (
        WD + "Q42",
        RDFS + "label",
        Literal("Douglas Adams", "en", None),
    )
    with pytest.raises(ValueError, match="predicate"):
        parse_ntriples_line(f'<{EX}a> "p" <{EX}c> .')
    with pytest.raises(ValueError, match="U\\+10FFFF"):
        parse_ntriples_line(f'<{EX}a> <{EX}b> "\\U00110000" .')


def test_mutated_lines_fast_and_rdflib_agree(wd_nt, tmp_path):
    """Random damage to real lines: both engines keep and reject the same lines."""
    rng = random.Random(7)
    with gzip.open(wd_nt, "rt", encoding="utf-8") as f:
        lines = [line.rstrip("\n") for _, line in zip(range(20_000), f)]
    pieces = [
        " ",
        "\t",
        "<",
        ">",
        '"',
        "\\",
        "\\u0041",
        "\\U0001F600",
        ":",
        ".",
        "#",
        "@",
        "^^",
        "_:",
        "-",
        "\u00a0",
    ]
    mutated = []
    for line in rng.sample(lines, 3000):
        for _ in range(rng.randint(1, 2)):
            i = rng.randrange(len(line) + 1)
            if rng.random() < 0.5 and line:
                line = line[:i] + line[i + 1 :]
            else:
                line = line[:i] + rng.choice(pieces) + line[i:]
        mutated.append(line)
    path = tmp_path / "mutated.nt"
    path.write_text("\n".join(mutated) + "\n", encoding="utf-8")
    bad_fast, bad_rdflib = RecordingBadLines(), RecordingBadLines()
    fast = list(iter_fast_ntriples(path, ReadContext(bad=bad_fast)))
    reference = list(iter_rdflib_ntriples(path, ReadContext(bad=bad_rdflib)))
    assert fast == reference
    assert bad_fast.lines == bad_rdflib.lines
    assert 200 < len(bad_fast.lines) < 2900  # the mutations produced both kinds of line
    # the fused fast reader gives the records of the term stream, bad lines alike
    bad_fused = RecordingBadLines()
    fused = records_of(
        read_ntriples(path, ReadContext(bad=bad_fused, options=ReaderOptions(languages=("en", "de"))))
    )
    mapped = list(rdf_to_records(reference, ReadContext(options=ReaderOptions(languages=("en", "de")))))
    assert fused == mapped and bad_fused.lines == bad_rdflib.lines


def test_fused_reader_equals_mapping_of_terms(edge_nt, tmp_path):
    path = tmp_path / "both.nt"
    path.write_bytes(edge_nt.read_bytes() + b"\n" + LABEL_DOC.encode())
    for languages in (("en",), ("de", "en-gb"), ()):
        options = ReaderOptions(languages=languages)
        fused = records_of(read_ntriples(path, ReadContext(options=options)))
        assert fused == list(
            rdf_to_records(iter_fast_ntriples(path, ReadContext()), ReadContext(options=options))
        )
    batches = list(iter_fast_records(path, ReadContext(), RecordMapper(ReadContext())))
    assert all(type(item) is list for item in batches)  # lists of records: one generator step per list
    assert [r for b in batches for r in b] == list(read_ntriples(path, ReadContext()))


# --- records ----------------------------------------------------------------------------


def _wikidata_entities() -> dict[str, dict]:
    with gzip.open(WD_JSON, "rt", encoding="utf-8") as f:
        rows = [line.strip().rstrip(",") for line in f]
    return {e["id"]: e for e in (json.loads(r) for r in rows if r not in ("[", "]", ""))}


@pytest.mark.slow
def test_engines_give_the_same_records_on_gz_wikidata(wd_nt):
    fast = records_of(read_ntriples(wd_nt, ReadContext()))
    reference = records_of(read_ntriples(wd_nt, ReadContext(options=ReaderOptions(ntriples_engine="rdflib"))))
    assert fast == reference
    entities = _wikidata_entities()
    q22 = entities["Q22"]
    assert Entity("Q22", label=q22["labels"]["en"]["value"], lang="en") in fast
    assert Entity("Q22", description=q22["descriptions"]["en"]["value"], lang="en") in fast
    for alias in q22["aliases"]["en"]:
        assert Entity("Q22", aliases=((alias["value"], "en"),)) in fast
    assert not any(isinstance(r, Entity) and r.lang not in ("en", None) for r in fast)
    for st in q22["claims"]["P31"]:
        assert Triple("Q22", "P31", st["mainsnak"]["datavalue"]["value"]["id"]) in fast
    assert (
        Triple("Q22", "http://www.w3.org/1999/02/22-rdf-syntax-ns#type", "http://wikiba.se/ontology#Item")
        in fast
    )
    quantities = [
        (pid, st["mainsnak"]["datavalue"]["value"]["amount"])
        for pid, sts in q22["claims"].items()
        for st in sts
        if st["rank"] == "normal"
        and all(x["rank"] == "normal" for x in sts)
        and st["mainsnak"].get("datavalue", {}).get("type") == "quantity"
    ]
    assert quantities
    for pid, amount in quantities:
        assert amount.startswith(("+", "-"))
        assert Attribute("Q22", pid, amount) in fast  # kept as written, sign included


def test_reader_registry_and_guess(wd_nt):
    assert guess_format(wd_nt) == "ntriples"
    assert get_reader("ntriples") is read_ntriples
    assert get_reader("turtle") is read_turtle and get_reader("rdfxml") is read_rdfxml
    first = next(iter(read(wd_nt)))
    assert isinstance(first, (Entity, Triple, Attribute))
    with pytest.raises(ValueError, match="ntriples_engine"):
        read_ntriples(wd_nt, ReadContext(options=ReaderOptions(ntriples_engine="nope")))


def test_wikidata_uri_shortening():
    assert wikidata_key(WD + "Q42") == "Q42"
    assert wikidata_key(WD + "P31") == "P31"
    assert wikidata_key(WDT + "P31") == "P31"
    assert wikidata_key("http://www.wikidata.org/prop/direct-normalized/P227") == "P227"
    assert wikidata_key(WD + "L7-S1") == "L7-S1"
    assert wikidata_key(WD + "statement/Q42-abc") == WD + "statement/Q42-abc"
    assert (
        wikidata_key("http://www.wikidata.org/prop/statement/P31")
        == "http://www.wikidata.org/prop/statement/P31"
    )
    assert wikidata_key("https://www.wikidata.org/entity/Q42") == "https://www.wikidata.org/entity/Q42"
    assert wikidata_key(EX + "Q42") == EX + "Q42"
    assert wikidata_key("_:b0") == "_:b0"


LABEL_DOC = f"""\
<{WD}Q1> <{RDFS}label> "Eins"@de .
<{WD}Q1> <{RDFS}label> "un"@fr .
<{WD}Q1> <http://schema.org/name> "one"@EN .
<{WD}Q1> <{SKOS}prefLabel> "one (GB)"@en-GB .
<{WD}Q1> <{RDFS}label> "untagged" .
<{WD}Q1> <{RDFS}label> "typed string"^^<{XSD}string> .
<{WD}Q1> <{RDFS}label> "5"^^<{XSD}integer> .
<{WD}Q1> <{SKOS}altLabel> "uno"@de .
<{WD}Q1> <{SKOS}altLabel> "ein"@fr .
<{WD}Q1> <http://schema.org/description> "erste Zahl"@de .
<{WD}Q1> <{RDFS}comment> "a note" .
<{WD}Q1> <{RDFS}label> <{EX}label-node> .
<{WD}P31> <{RDFS}label> "instance of"@en .
<{WD}P31> <{RDFS}label> "ist ein(e)"@de .
<{WD}P31> <{RDFS}label> "est un"@fr .
<{WD}P31> <{SKOS}altLabel> "is a"@en .
<{WD}P31> <{SKOS}altLabel> "type"@en .
<{WD}P31> <http://schema.org/description> "that class of which this is an instance"@en .
<{WD}Q1> <{WDT}P31> <{WD}Q5> .
<{WD}Q1> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://wikiba.se/ontology#Item> .
<{WD}Q1> <{WDT}P1082> "+42"^^<{XSD}decimal> .
<{WD}Q1> <{WDT}P1476> "Titel"@de .
<{WD}Q1> <{EX}note> "plain" .
_:n1 <{EX}linked> <{WD}Q1> .
"""


def _records(text: str, tmp_path: Path, **options) -> list:
    path = tmp_path / "doc.nt"
    path.write_text(text, encoding="utf-8")
    return records_of(read_ntriples(path, ReadContext(options=ReaderOptions(**options))))


def test_labels_by_preferred_language(tmp_path):
    records = _records(LABEL_DOC, tmp_path, languages=("de", "en"))
    entities = [r for r in records if isinstance(r, Entity)]
    assert entities == [
        Entity("Q1", label="Eins", lang="de"),
        Entity("Q1", label="one", lang="en"),  # "@EN" matches "en"; the option's spelling is used
        Entity("Q1", label="untagged", lang=None),
        Entity("Q1", label="typed string", lang=None),
        Entity("Q1", aliases=(("uno", "de"),)),
        Entity("Q1", description="erste Zahl", lang="de"),
        Entity("Q1", description="a note", lang=None),
    ]
    relations = [r for r in records if isinstance(r, Relation)]
    assert relations == [
        Relation(
            "P31", "ist ein(e)", (("is a", "en"), ("type", "en")), "that class of which this is an instance"
        )
    ]
    assert Triple("Q1", RDFS + "label", EX + "label-node") in records  # an IRI object is an edge
    # English first: the property label follows the order of options.languages
    records_en = _records(LABEL_DOC, tmp_path, languages=("en", "de"))
    assert [r for r in records_en if isinstance(r, Relation)][0].label == "instance of"
    assert Entity("Q1", label="one (GB)", lang="en-gb") not in records_en
    records_gb = _records(LABEL_DOC, tmp_path, languages=("en-gb",))
    assert Entity("Q1", label="one (GB)", lang="en-gb") in records_gb


def test_triples_attributes_and_property_filter(tmp_path):
    records = _records(LABEL_DOC, tmp_path)
    assert Triple("Q1", "P31", "Q5") in records
    assert (
        Triple("Q1", "http://www.w3.org/1999/02/22-rdf-syntax-ns#type", "http://wikiba.se/ontology#Item")
        in records
    )
    assert Triple("_:n1", EX + "linked", "Q1") in records
    assert Attribute("Q1", "P1082", "+42") in records
    assert Attribute("Q1", "P1476", "Titel") in records
    assert Attribute("Q1", EX + "note", "plain") in records
    filtered = _records(LABEL_DOC, tmp_path, properties=frozenset({"P31"}))
    assert [r for r in filtered if isinstance(r, Triple)] == [Triple("Q1", "P31", "Q5")]
    assert Attribute("Q1", "P1082", "+42") in filtered  # the filter applies to triples only


# --- Turtle and RDF/XML -----------------------------------------------------------------


def _small_graph() -> rdflib.Graph:
    g = rdflib.Graph()
    q1, q5 = rdflib.URIRef(WD + "Q1"), rdflib.URIRef(WD + "Q5")
    g.add((q1, rdflib.RDFS.label, rdflib.Literal("one", lang="en")))
    g.add((q1, rdflib.RDFS.label, rdflib.Literal("eins", lang="de")))
    g.add((q1, rdflib.URIRef(WDT + "P31"), q5))
    when = rdflib.Literal("+2001-01-15T00:00:00Z", datatype=rdflib.XSD.dateTime, normalize=False)
    g.add((q1, rdflib.URIRef(WDT + "P585"), when))
    g.add((rdflib.URIRef(WD + "P31"), rdflib.RDFS.label, rdflib.Literal("instance of", lang="en")))
    return g


SMALL_EXPECTED = {
    Entity("Q1", label="one", lang="en"),
    Triple("Q1", "P31", "Q5"),
    Attribute("Q1", "P585", "+2001-01-15T00:00:00Z"),
    Relation("P31", "instance of", (), None),
}


@pytest.mark.parametrize(
    ("fmt", "name", "reader"),
    [
        ("turtle", "small.ttl", read_turtle),
        ("xml", "small.rdf", read_rdfxml),
        ("turtle", "small.ttl.gz", read_turtle),
    ],
)
def test_turtle_and_rdfxml(tmp_path, fmt, name, reader):
    data = _small_graph().serialize(format=fmt, encoding="utf-8")
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert set(reader(path, ReadContext())) == SMALL_EXPECTED
    assert set(read(path)) == SMALL_EXPECTED  # format guessed from the name


def test_turtle_blank_nodes_are_stable(tmp_path):
    path = tmp_path / "b.ttl"
    path.write_text(
        f'@prefix ex: <{EX}> .\nex:a ex:knows [ ex:name "anon" ] .\n_:x ex:knows ex:a .\n', encoding="utf-8"
    )
    first = list(read_turtle(path, ReadContext()))
    assert first == list(read_turtle(path, ReadContext()))
    keys = {r.tail for r in first if isinstance(r, Triple)} | {r.head for r in first if isinstance(r, Triple)}
    assert {k for k in keys if k.startswith("_:")} == {"_:b.ttl#0", "_:b.ttl#1"}
    assert any(
        r == Attribute(r.entity, EX + "name", "anon") and r.entity.startswith("_:b.ttl#") for r in first
    )


def test_turtle_relative_iris_resolve_against_the_file(tmp_path):
    path = tmp_path / "rel.ttl"
    path.write_text('<a> <b> "x" .\n', encoding="utf-8")
    (record,) = list(read_turtle(path, ReadContext()))
    assert record == Attribute(path.resolve().as_uri()[: -len("rel.ttl")] + "a", record.name, "x")


def test_malformed_turtle_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.ttl"
    path.write_text(f'@prefix ex: <{EX}> .\nex:a ex:b ex:c .\nex:a ex:b "unterminated .\n', encoding="utf-8")
    with pytest.raises(SourceError) as err:
        list(read_turtle(path, ReadContext()))
    assert err.value.path == str(path) and err.value.line == 3
    assert str(err.value).startswith(f"{path}:3: turtle parse error")


def test_malformed_rdfxml_names_the_file(tmp_path):
    path = tmp_path / "bad.rdf"
    path.write_text(
        '<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '<rdf:Description rdf:about="http://a/x">\n</rdf:RDF>\n',
        encoding="utf-8",
    )
    with pytest.raises(SourceError) as err:
        list(read_rdfxml(path, ReadContext()))
    assert err.value.path == str(path) and err.value.line == 4


# --- bad lines, compression ---------------------------------------------------------------

GOOD = f"<{WD}Q1> <{WDT}P31> <{WD}Q5> .\n"
BAD = f"<{WD}Q2> <{WDT}P31> .\n"


@pytest.mark.parametrize("engine", ["fast", "rdflib"])
def test_malformed_line_is_an_error_naming_file_and_line(tmp_path, engine):
    path = tmp_path / "bad.nt"
    path.write_text(GOOD + GOOD + BAD + GOOD, encoding="utf-8")
    options = ReaderOptions(ntriples_engine=engine)
    with pytest.raises(SourceError) as err:
        records_of(read_ntriples(path, ReadContext(options=options)))
    assert err.value.path == str(path) and err.value.line == 3
    assert str(err.value).startswith(f"{path}:3: ")

    bad = BadLines(limit=1)
    records = records_of(read_ntriples(path, ReadContext(options=options, bad=bad)))
    assert records == [Triple("Q1", "P31", "Q5")] * 3
    assert bad.count == 1 and bad.examples[0].startswith(f"{path}:3: ")


@pytest.mark.parametrize("engine", ["fast", "rdflib"])
def test_invalid_utf8_and_gz_input(tmp_path, engine):
    path = tmp_path / "x.nt.gz"
    path.write_bytes(
        gzip.compress(
            GOOD.encode() + f'<{WD}Q3> <{RDFS}label> "\xff"@en .\n'.encode("latin-1") + GOOD.encode()
        )
    )
    options = ReaderOptions(ntriples_engine=engine)
    with pytest.raises(SourceError, match="x.nt.gz:2: invalid UTF-8"):
        records_of(read_ntriples(path, ReadContext(options=options)))
    bad = BadLines(limit=1)
    assert (
        records_of(read_ntriples(path, ReadContext(options=options, bad=bad)))
        == [Triple("Q1", "P31", "Q5")] * 2
    )
    assert bad.count == 1


def test_bom_and_empty_file(tmp_path):
    path = tmp_path / "bom.nt"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert list(iter_fast_ntriples(path, ReadContext())) == list(iter_rdflib_ntriples(path, ReadContext()))
    assert len(list(iter_fast_ntriples(path, ReadContext()))) == 1
    empty = tmp_path / "empty.nt"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="empty"):
        records_of(read_ntriples(empty, ReadContext()))


def test_rdf_to_records_takes_any_engine_triples():
    ctx = ReadContext()
    triples = [(WD + "Q9", RDFS + "label", Literal("nine", "en", None)), (WD + "Q9", WDT + "P31", WD + "Q5")]
    assert list(rdf_to_records(triples, ctx)) == [
        Entity("Q9", label="nine", lang="en"),
        Triple("Q9", "P31", "Q5"),
    ]
