"""Realistic N-Triples from the real Wikidata JSON sample, for the RDF benchmark and tests.

No Wikidata N-Triples sample is stored in shared/data, so this converts the JSON
dump sample (``dumps/wikidata_latest-all_first50lines.json.gz``, one entity per
line) into the shape of Wikidata's own RDF dump: labels as ``rdfs:label``,
``skos:prefLabel`` and ``schema:name``, ``schema:description``,
``skos:altLabel``, truthy ``wdt:`` statements, full statement nodes (``p:``,
``ps:``, ``pq:``, ranks, references with ``pr:``), full-value nodes (``psv:``,
``pqv:`` -> ``wdv:`` with ``wikibase:timeValue``, ``quantityAmount``,
``geoLatitude`` ...), entity metadata and sitelinks, so it has typed literals of
many kinds (``xsd:decimal`` quantities such as ``"+5"``, ``xsd:dateTime`` times
such as ``"+2001-01-15T00:00:00Z"``, ``xsd:integer``, ``xsd:double``,
``geo:wktLiteral``). ``somevalue`` snaks become blank nodes. The data values are real;
only the statement-node layout is reconstructed.

Usage: ``python bench/ntriples_data.py OUT.nt[.gz]`` writes the file;
``python bench/ntriples_data.py --time FILE.nt`` times the N-Triples engines.
Importable: ``wikidata_json_to_ntriples``, ``time_engines``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

WD = "http://www.wikidata.org/"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
SKOS = "http://www.w3.org/2004/02/skos/core#"
SCHEMA = "http://schema.org/"
WIKIBASE = "http://wikiba.se/ontology#"
XSD = "http://www.w3.org/2001/XMLSchema#"
GEO_WKT = "http://www.opengis.net/ont/geosparql#wktLiteral"
PROV_DERIVED = "http://www.w3.org/ns/prov#wasDerivedFrom"
RANKS = {"preferred": "PreferredRank", "normal": "NormalRank", "deprecated": "DeprecatedRank"}
_LANG_TAG = re.compile(r"[a-zA-Z]+(?:-[a-zA-Z0-9]+)*")
_IRI_UNSAFE = re.compile(r'[\x00-\x20<>"{}|\\^`\x7f]')


def default_json_path() -> Path:
    """The Wikidata JSON sample in the shared data folder next to the repository."""
    return (
        Path(__file__).resolve().parents[2]
        / "shared"
        / "data"
        / "dumps"
        / "wikidata_latest-all_first50lines.json.gz"
    )


def _iri(iri: str) -> str:
    return "<" + _IRI_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", iri) + ">"


def _lit(value: str, lang: str | None = None, datatype: str | None = None) -> str:
    text = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    if lang:
        return f'"{text}"@{lang}'
    return f'"{text}"^^<{datatype}>' if datatype else f'"{text}"'


def _entities(json_path: Path) -> Iterator[dict]:
    opener = gzip.open if json_path.suffix == ".gz" else open
    with opener(json_path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip().rstrip(",")
            if line and line not in ("[", "]"):
                yield json.loads(line)


def _value(snak: dict) -> str | None:
    """The N-Triples object for a snak's value (None for novalue / unsupported)."""
    if snak["snaktype"] == "somevalue":
        return "_:sv" + hashlib.md5(json.dumps(snak, sort_keys=True).encode()).hexdigest()[:16]
    if snak["snaktype"] != "value":
        return None
    dv, kind = snak["datavalue"]["value"], snak["datavalue"]["type"]
    dtype = snak.get("datatype", "")
    if kind == "wikibase-entityid":
        return _iri(WD + "entity/" + dv["id"]) if "id" in dv else None
    if kind == "string":
        if dtype == "url":
            return _iri(dv) if ":" in dv else None
        if dtype == "commonsMedia":
            return _iri("http://commons.wikimedia.org/wiki/Special:FilePath/" + quote(dv.replace(" ", "_")))
        return _lit(dv)
    if kind == "monolingualtext":
        return _lit(dv["text"], dv["language"]) if _LANG_TAG.fullmatch(dv["language"]) else None
    if kind == "quantity":
        return _lit(dv["amount"], datatype=XSD + "decimal")
    if kind == "time":
        return _lit(dv["time"], datatype=XSD + "dateTime")
    if kind == "globecoordinate":
        return _lit(f"Point({dv['longitude']} {dv['latitude']})", datatype=GEO_WKT)
    return None


def _value_node(snak: dict) -> tuple[str, list[str]] | None:
    """A full-value node (``wdv:``) for time, quantity and coordinate values, with its triples."""
    if snak["snaktype"] != "value" or snak["datavalue"]["type"] not in (
        "time",
        "quantity",
        "globecoordinate",
    ):
        return None
    dv, kind = snak["datavalue"]["value"], snak["datavalue"]["type"]
    node = _iri(WD + "value/" + hashlib.md5(json.dumps(dv, sort_keys=True).encode()).hexdigest())
    wb, lines = WIKIBASE, []

    def add(pred: str, obj: str) -> None:
        lines.append(f"{node} <{wb}{pred}> {obj} .")

    if kind == "time":
        lines.append(f"{node} <{RDF_TYPE}> <{wb}TimeValue> .")
        add("timeValue", _lit(dv["time"], datatype=XSD + "dateTime"))
        add("timePrecision", _lit(str(dv["precision"]), datatype=XSD + "integer"))
        add("timeTimezone", _lit(str(dv["timezone"]), datatype=XSD + "integer"))
        add("timeCalendarModel", _iri(dv["calendarmodel"]))
    elif kind == "quantity":
        lines.append(f"{node} <{RDF_TYPE}> <{wb}QuantityValue> .")
        add("quantityAmount", _lit(dv["amount"], datatype=XSD + "decimal"))
        for bound in ("upperBound", "lowerBound"):
            if bound in dv:
                add("quantity" + bound[0].upper() + bound[1:], _lit(dv[bound], datatype=XSD + "decimal"))
        add("quantityUnit", _iri(dv["unit"] if ":" in dv["unit"] else WD + "entity/Q199"))
    else:
        lines.append(f"{node} <{RDF_TYPE}> <{wb}GlobecoordinateValue> .")
        add("geoLatitude", _lit(repr(float(dv["latitude"])), datatype=XSD + "double"))
        add("geoLongitude", _lit(repr(float(dv["longitude"])), datatype=XSD + "double"))
        if dv.get("precision") is not None:
            add("geoPrecision", _lit(repr(float(dv["precision"])), datatype=XSD + "double"))
        add("geoGlobe", _iri(dv.get("globe") or WD + "entity/Q2"))
    return node, lines


def _entity_lines(e: dict) -> Iterator[str]:
    subj = _iri(WD + "entity/" + e["id"])
    kind = "Property" if e.get("type") == "property" else "Item"
    data = _iri("https://www.wikidata.org/wiki/Special:EntityData/" + e["id"])
    yield f"{data} <{SCHEMA}about> {subj} ."
    yield f"{data} <{RDF_TYPE}> <{SCHEMA}Dataset> ."
    if "lastrevid" in e:
        yield f"{data} <{SCHEMA}version> {_lit(str(e['lastrevid']), datatype=XSD + 'integer')} ."
    if "modified" in e:
        yield f"{data} <{SCHEMA}dateModified> {_lit(e['modified'], datatype=XSD + 'dateTime')} ."
    yield f"{subj} <{RDF_TYPE}> <{WIKIBASE}{kind}> ."
    n_statements = sum(len(v) for v in e.get("claims", {}).values())
    yield f"{subj} <{WIKIBASE}statements> {_lit(str(n_statements), datatype=XSD + 'integer')} ."
    yield f"{subj} <{WIKIBASE}sitelinks> {_lit(str(len(e.get('sitelinks', {}))), datatype=XSD + 'integer')} ."
    for lang, v in e.get("labels", {}).items():
        if _LANG_TAG.fullmatch(lang):
            for pred in (RDFS_LABEL, SKOS + "prefLabel", SCHEMA + "name"):
                yield f"{subj} <{pred}> {_lit(v['value'], lang)} ."
    for lang, v in e.get("descriptions", {}).items():
        if _LANG_TAG.fullmatch(lang):
            yield f"{subj} <{SCHEMA}description> {_lit(v['value'], lang)} ."
    for lang, vs in e.get("aliases", {}).items():
        if _LANG_TAG.fullmatch(lang):
            for v in vs:
                yield f"{subj} <{SKOS}altLabel> {_lit(v['value'], lang)} ."
    refs_done: set[str] = set()
    for pid, statements in e.get("claims", {}).items():
        best = "preferred" if any(s.get("rank") == "preferred" for s in statements) else "normal"
        for st in statements:
            value = _value(st["mainsnak"])
            if st.get("rank") == best and value is not None:
                yield f"{subj} <{WD}prop/direct/{pid}> {value} ."
            node = _iri(WD + "entity/statement/" + st["id"].replace("$", "-"))
            yield f"{subj} <{WD}prop/{pid}> {node} ."
            yield f"{node} <{RDF_TYPE}> <{WIKIBASE}Statement> ."
            if value is not None:
                yield f"{node} <{WD}prop/statement/{pid}> {value} ."
            if (full := _value_node(st["mainsnak"])) is not None:
                yield f"{node} <{WD}prop/statement/value/{pid}> {full[0]} ."
                yield from full[1]
            yield f"{node} <{WIKIBASE}rank> <{WIKIBASE}{RANKS.get(st.get('rank'), 'NormalRank')}> ."
            for qpid, snaks in st.get("qualifiers", {}).items():
                for snak in snaks:
                    if (q := _value(snak)) is not None:
                        yield f"{node} <{WD}prop/qualifier/{qpid}> {q} ."
                    if (full := _value_node(snak)) is not None:
                        yield f"{node} <{WD}prop/qualifier/value/{qpid}> {full[0]} ."
                        yield from full[1]
            for ref in st.get("references", []):
                ref_node = _iri(WD + "reference/" + ref["hash"])
                yield f"{node} <{PROV_DERIVED}> {ref_node} ."
                if ref["hash"] in refs_done:
                    continue
                refs_done.add(ref["hash"])
                for rpid, snaks in ref.get("snaks", {}).items():
                    for snak in snaks:
                        if (r := _value(snak)) is not None:
                            yield f"{ref_node} <{WD}prop/reference/{rpid}> {r} ."
    for site, link in e.get("sitelinks", {}).items():
        m = re.fullmatch(r"([a-z_]+)wiki", site)
        if not m or m.group(1) in ("commons", "species", "meta", "wikidata", "mediawiki", "sources"):
            continue
        lang = m.group(1).replace("_", "-")
        if not _LANG_TAG.fullmatch(lang):
            continue
        page = _iri(f"https://{lang}.wikipedia.org/wiki/" + quote(link["title"].replace(" ", "_")))
        yield f"{page} <{SCHEMA}about> {subj} ."
        yield f"{page} <{SCHEMA}isPartOf> <https://{lang}.wikipedia.org/> ."
        yield f"{page} <{SCHEMA}inLanguage> {_lit(lang)} ."
        yield f"{page} <{SCHEMA}name> {_lit(link['title'], lang)} ."


def wikidata_json_to_ntriples(json_path: str | Path, out_path: str | Path) -> int:
    """Write Wikidata-RDF-shaped N-Triples for every entity of a Wikidata JSON dump.

    json_path: a Wikidata JSON dump (``[``, one entity per line with trailing
        commas, ``]``), plain or ``.gz``.
    out_path: the N-Triples file to write; gzip-compressed when it ends in ``.gz``.
    Returns the number of lines (triples) written.
    """
    out = Path(out_path)
    n = 0
    raw = open(out, "wb")
    stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if out.suffix == ".gz" else raw
    try:
        for entity in _entities(Path(json_path)):
            chunk = "\n".join(_entity_lines(entity))
            if chunk:
                stream.write((chunk + "\n").encode("utf-8"))
                n += chunk.count("\n") + 1
    finally:
        stream.close()
        raw.close()
    return n


def time_engines(path: str | Path, repeats: int = 3) -> dict[str, float]:
    """Best CPU seconds over ``repeats`` runs of each N-Triples engine on ``path``.

    Keys: ``fast``/``rdflib`` (triples only: ``iter_fast_ntriples`` /
    ``iter_rdflib_ntriples``), ``fast records``/``rdflib records`` (``read_ntriples``)
    and ``rdflib plain`` (rdflib's own ``W3CNTriplesParser.parse`` on the file,
    default settings, a sink that only counts).
    """
    from rdflib.plugins.parsers.ntriples import W3CNTriplesParser

    from kept.kg.sources import ReadContext, ReaderOptions
    from kept.kg.sources.rdf import iter_fast_ntriples, iter_rdflib_ntriples, read_ntriples

    class Count:
        def triple(self, s: object, p: object, o: object) -> None:
            pass

    def plain() -> None:
        log = logging.getLogger("rdflib.term")  # silenced: it logs a traceback per "+2001-..." dateTime
        log.disabled = True
        try:
            with (gzip.open if str(path).endswith(".gz") else open)(path, "rb") as f:
                W3CNTriplesParser(Count()).parse(f)  # type: ignore[arg-type]
        finally:
            log.disabled = False

    p, fast, ref = Path(path), ReadContext(), ReadContext(options=ReaderOptions(ntriples_engine="rdflib"))
    runs = {
        "fast": lambda: sum(1 for _ in iter_fast_ntriples(p, fast)),
        "rdflib": lambda: sum(1 for _ in iter_rdflib_ntriples(p, ref)),
        "fast records": lambda: sum(1 for _ in read_ntriples(p, fast)),
        "rdflib records": lambda: sum(1 for _ in read_ntriples(p, ref)),
        "rdflib plain": plain,
    }
    best: dict[str, float] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.process_time()
            run()
            best[name] = min(best.get(name, float("inf")), time.process_time() - start)
    return best


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help") or (args[0].startswith("-") and args[0] != "--time"):
        print(__doc__)
        sys.exit(0 if args[:1] in (["-h"], ["--help"]) else 2)
    if args[:1] == ["--time"] and len(args) == 2:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        t = time_engines(args[1])
        print({k: round(v, 3) for k, v in t.items()})
        ratios = (
            t["rdflib"] / t["fast"],
            t["rdflib records"] / t["fast records"],
            t["rdflib plain"] / t["fast"],
        )
        print(
            "rdflib / fast: {:.1f}x triples, {:.1f}x records, {:.1f}x vs plain rdflib parse".format(*ratios)
        )
    elif len(args) in (1, 2):
        src = Path(args[1]) if len(args) == 2 else default_json_path()
        print(wikidata_json_to_ntriples(src, args[0]), "lines written to", args[0])
    else:
        sys.exit("usage: python bench/ntriples_data.py OUT.nt[.gz] [WIKIDATA_JSON] | --time FILE.nt[.gz]")
