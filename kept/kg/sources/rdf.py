"""RDF readers: N-Triples (streaming), Turtle and RDF/XML (via an rdflib Graph).

Engines produce triples of terms (see :mod:`kept.kg.sources.ntriples`): an IRI
is a ``str``, a blank node a ``str`` starting with ``"_:"``, a literal a
:class:`Literal` ``(value, lang, datatype)``. :func:`rdf_to_records` maps them to
records, the same way for every engine:

* IRIs are keys; Wikidata IRIs are shortened (``wd:Q42`` -> ``"Q42"``;
  ``wdt:P31``, ``wdtn:P31`` and ``wd:P31`` -> ``"P31"``); other IRIs stay whole.
  Blank nodes are keys starting with ``_:``: N-Triples labels as written (so
  ``_:b1`` in two files of one build is one key), Turtle / RDF/XML ones
  numbered per file (see :func:`iter_rdflib_graph`).
* ``rdfs:label``, ``skos:prefLabel``, ``schema:name`` -> labels;
  ``skos:altLabel`` -> aliases; ``schema:description``, ``rdfs:comment`` ->
  descriptions. Such a literal is used when its language is one of
  ``ctx.options.languages`` (compared case-insensitively) or when it has no
  language tag (and is a plain or ``xsd:string`` literal); others are dropped.
* For an entity, each accepted literal is one record, because its labels may be
  spread over a streamed file: ``Entity(key, label=v, lang=l)``,
  ``Entity(key, aliases=((v, l),))`` and ``Entity(key, description=v, lang=l)``.
  ``l`` is the matching entry of ``ctx.options.languages`` (so the builder can
  rank it) or None for an untagged literal (rank it last). The builder merges
  the records of one key, keeping the label and description in the most
  preferred language.
* Wikidata properties (subject key ``P<digits>``) are few, so their labels are
  collected and one final ``Relation(pid, label, aliases, description)`` per
  property is emitted at the end, with the best-ranked label and description.
* An IRI or blank-node object -> ``Triple(s, p, o)`` (``rdf:type`` included),
  dropped when ``ctx.options.properties`` is a set without ``p``'s key.
* Any other literal object -> ``Attribute(s, p, lexical value)``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from kept.kg.sources import ReadContext
from kept.kg.sources.errors import SourceError
from kept.kg.sources.ntriples import (
    Literal,
    Term,
    TermTriple,
    invalid_iri,
    iri_problem,
    iter_fast_ntriples,
    ntriples_lines,
    parse_ntriples_line,
    unescape,
)
from kept.kg.sources.rdf_mapping import RecordMapper, iter_fast_records, rdf_to_records, wikidata_key
from kept.kg.sources.records import Record

__all__ = [
    "Literal",
    "Term",
    "TermTriple",
    "from_rdflib",
    "iter_fast_ntriples",
    "iter_rdflib_graph",
    "iter_rdflib_ntriples",
    "parse_ntriples_line",
    "rdf_to_records",
    "read_ntriples",
    "read_rdfxml",
    "read_turtle",
    "RecordMapper",
    "unescape",
    "wikidata_key",
]

# --- rdflib engines ---------------------------------------------------------------------


def from_rdflib(term: Any) -> Term:
    """Convert an rdflib term (URIRef, BNode, Literal) to this module's representation.

    A blank node becomes ``"_:" + its rdflib id``; a literal keeps rdflib's
    lexical form, language tag (case as parsed) and datatype.
    """
    from rdflib.term import BNode, URIRef
    from rdflib.term import Literal as RdflibLiteral

    if isinstance(term, RdflibLiteral):
        dt = term.datatype
        return Literal(str.__str__(term), term.language, None if dt is None else str.__str__(dt))
    if isinstance(term, BNode):
        return "_:" + str.__str__(term)
    if isinstance(term, URIRef):
        return str.__str__(term)
    raise TypeError(f"not an RDF term: {term!r}")


@contextlib.contextmanager
def _rdflib_as_written() -> Iterator[None]:
    """Make rdflib keep literal lexical forms as written and stay quiet while parsing.

    Sets ``rdflib.NORMALIZE_LITERALS = False`` (by default rdflib rewrites e.g.
    ``"+5"^^xsd:decimal`` to ``"5"``) and silences the warning rdflib logs, with
    a traceback, for every literal it cannot convert to a Python value (such as
    Wikidata's ``"+2001-01-15T00:00:00Z"^^xsd:dateTime``). Restored on exit.
    """
    import rdflib

    old, log = rdflib.NORMALIZE_LITERALS, logging.getLogger("rdflib.term")
    was_disabled, log.disabled = log.disabled, True
    rdflib.NORMALIZE_LITERALS = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        rdflib.NORMALIZE_LITERALS = old
        log.disabled = was_disabled


class _KeepLabels(dict):
    """A blank-node context for rdflib's parser that maps every label to itself."""

    def get(self, key: str, default: Any = None) -> str:  # type: ignore[override]
        return key


class _ListSink:
    """rdflib parser sink collecting converted triples."""

    def __init__(self) -> None:
        self.triples: list[TermTriple] = []

    def triple(self, s: Any, p: Any, o: Any) -> None:
        self.triples.append((from_rdflib(s), from_rdflib(p), from_rdflib(o)))  # type: ignore[arg-type]


def iter_rdflib_ntriples(path: Path, ctx: ReadContext, batch: int = 2000) -> Iterator[TermTriple]:
    """Stream an N-Triples file through rdflib's N-Triples parser (the reference engine).

    rdflib's ``W3CNTriplesParser`` parses each line (``parseline``) of the file
    opened with ``ctx.open``, so compression, line numbers and the bad-line
    budget work as for the fast engine. Lexical forms are kept as written
    (``NORMALIZE_LITERALS`` off while parsing) and blank node labels kept
    (``_:b1`` stays ``"_:b1"`` rather than getting a fresh rdflib id).

    path: the file (plain or .gz/.bz2/.xz).
    ctx: read context; malformed lines go to ``ctx.bad``.
    batch: lines parsed per step between yields (default 2000).
    """
    from rdflib.exceptions import ParserError
    from rdflib.plugins.parsers.ntriples import W3CNTriplesParser

    sink = _ListSink()
    parser = W3CNTriplesParser(sink, bnode_context=_KeepLabels())  # type: ignore[arg-type]
    with ctx.open(path) as f:
        lines = ntriples_lines(f, ctx)
        while chunk := [(f.lineno, line) for line in islice(lines, batch)]:
            pos = 0
            while pos < len(chunk):
                errors: list[str] = []
                with _rdflib_as_written():
                    while pos < len(chunk) and not errors:
                        lineno, line = chunk[pos]
                        pos += 1
                        done = len(sink.triples)
                        for part in line.split("\r"):  # rdflib ends lines at CR, too
                            parser.line = part
                            try:
                                parser.parseline()
                            except (ParserError, ValueError) as exc:
                                errors.append(f"rdflib: {exc}")
                        bad = next(filter(None, map(invalid_iri, sink.triples[done:])), None)
                        if bad is not None:  # the IRI rule of every RDF input, rdflib's own is looser
                            del sink.triples[done:]
                            errors.append(iri_problem(bad))
                if not errors:
                    done = len(sink.triples)
                # as the fast engine: earlier lines' triples, then the errors, then the rest
                yield from sink.triples[:done]
                del sink.triples[:done]
                for problem in errors:
                    ctx.bad.report(path, lineno, problem)
        yield from sink.triples


def iter_rdflib_graph(path: Path, ctx: ReadContext, format: str) -> Iterator[TermTriple]:
    """Parse a whole file into an rdflib Graph and yield its triples (not streaming).

    For small Turtle / RDF/XML files: the decompressed file is read into memory.
    Relative IRIs resolve against the file's ``file://`` URI. Quoted literals
    keep their lexical form, but rdflib's Turtle parser builds the numeric and
    boolean shorthands (``42``, ``+42.0``, ``007``) from Python values, so they
    come out canonical (``"42"``, ``"42.0"``, ``"7"``). Triples come in the
    order rdflib's parser produces them (duplicates dropped); blank nodes are
    numbered in order of appearance, ``_:<file name>#<n>``, so a file gives the
    same keys on every run. Any parse error is a :class:`SourceError`
    naming the file (and the line where rdflib gives one).

    path: the file (plain or .gz/.bz2/.xz), opened through ``ctx.open``.
    ctx: read context.
    format: rdflib format name, ``"turtle"`` or ``"xml"`` (RDF/XML).
    """
    import rdflib

    with ctx.open(path) as f:
        data = b"\n".join(f.lines()) + b"\n"  # lines() drops the line endings
    if format == "xml":
        refuse_entities(path, data)

    class InOrder(rdflib.Graph):  # remembers the order the parser adds triples in
        def add(self, triple: Any) -> Any:
            order[triple] = None
            return super().add(triple)

    order: dict[Any, None] = {}
    try:
        with _rdflib_as_written():
            InOrder().parse(data=data, format=format, publicID=path.resolve().as_uri())
    except Exception as exc:  # rdflib raises many types: BadSyntax, SAXParseException, ValueError ...
        raise SourceError(path, _error_line(exc, data), f"{format} parse error: {_first_line(exc)}") from exc
    bnodes: dict[str, str] = {}
    for triple in order:
        s, p, o = (from_rdflib(t) for t in triple)
        if (bad := invalid_iri((s, p, o))) is not None:  # type: ignore[arg-type]
            at = data.find(bad.encode("utf-8"))
            ctx.bad.report(path, data.count(b"\n", 0, at) + 1 if at >= 0 else None, iri_problem(bad))
            continue
        if isinstance(s, str) and s.startswith("_:"):
            s = bnodes.setdefault(s, f"_:{path.name}#{len(bnodes)}")
        if isinstance(o, str) and o.startswith("_:"):
            o = bnodes.setdefault(o, f"_:{path.name}#{len(bnodes)}")
        yield s, p, o  # type: ignore[misc]


def refuse_entities(path: Path, data: bytes) -> None:
    """SourceError for an XML file that declares DTD entities (``<!ENTITY``), before any XML parser
    sees it: entity expansion is how a 1 KB "billion laughs" file takes minutes and gigabytes, and
    external entities read other files. Expand such shorthands in the file (e.g. with xmllint --noent)."""
    at = data.find(b"<!ENTITY")
    if at >= 0:
        raise SourceError(path, data.count(b"\n", 0, at) + 1,
                          "DTD entity declarations (<!ENTITY ...>) are not accepted in RDF/XML input "
                          "(they can expand without bound); expand them first, e.g. `xmllint --noent`")


def _error_line(exc: Exception, data: bytes) -> int | None:
    """The 1-based line of a parse error, when rdflib tells it."""
    if isinstance(exc, UnicodeDecodeError):
        return data.count(b"\n", 0, exc.start) + 1
    lines = getattr(exc, "lines", None)  # notation3.BadSyntax: 0-based
    if isinstance(lines, int):
        return lines + 1
    get_line = getattr(exc, "getLineNumber", None)  # xml.sax.SAXParseException
    if callable(get_line):
        return get_line()
    return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(line.strip() for line in text.split("\n")[:3])


# --- readers ----------------------------------------------------------------------------

NTRIPLES_ENGINES = {"fast": iter_fast_ntriples, "rdflib": iter_rdflib_ntriples}


def read_ntriples(path: Path, ctx: ReadContext) -> Iterator[Record]:
    """Stream the records of an N-Triples file (plain or .gz/.bz2/.xz).

    path: the file. ctx: read context; ``options.ntriples_engine`` picks the
    parser: ``"fast"`` (default: :func:`iter_fast_records`, the fast parser
    fused with the mapping) or ``"rdflib"`` (:func:`iter_rdflib_ntriples` and
    :func:`rdf_to_records`, the slower reference). Both give the same records,
    one at a time. Malformed lines go to ``ctx.bad`` (an error unless the
    bad-line budget allows skipping them).
    """
    engine = ctx.options.ntriples_engine
    if engine not in NTRIPLES_ENGINES:
        raise ValueError(f"unknown ntriples_engine {engine!r}; use one of {', '.join(NTRIPLES_ENGINES)}")
    if engine == "fast":
        return _flatten(iter_fast_records(Path(path), ctx, RecordMapper(ctx)))
    return rdf_to_records(NTRIPLES_ENGINES[engine](Path(path), ctx), ctx)


def _flatten(batches: Iterator[list[Record]]) -> Iterator[Record]:
    for batch in batches:
        yield from batch


def read_turtle(path: Path, ctx: ReadContext) -> Iterator[Record]:
    """Records of a Turtle file, parsed whole by rdflib (for small files; not streaming)."""
    return rdf_to_records(iter_rdflib_graph(Path(path), ctx, "turtle"), ctx)


def read_rdfxml(path: Path, ctx: ReadContext) -> Iterator[Record]:
    """Records of an RDF/XML file (.rdf/.owl/.xml), parsed whole by rdflib (not streaming)."""
    return rdf_to_records(iter_rdflib_graph(Path(path), ctx, "xml"), ctx)
