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
import re
import warnings
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from kept.kg.sources import ReadContext
from kept.kg.sources.errors import SourceError
from kept.kg.sources.ntriples import (
    XSD,
    Literal,
    Term,
    TermTriple,
    iter_fast_ntriples,
    iter_fast_records,
    ntriples_lines,
    parse_ntriples_line,
    unescape,
)
from kept.kg.sources.records import NO_SPLIT, Attribute, Entity, Record, Relation, Triple

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

RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
_LABEL, _ALIAS, _DESCRIPTION = 0, 1, 2
#: predicate IRI -> what its literal objects are
TEXT_PREDICATES: dict[str, int] = {
    RDFS + "label": _LABEL,
    SKOS + "prefLabel": _LABEL,
    "http://schema.org/name": _LABEL,
    "https://schema.org/name": _LABEL,
    SKOS + "altLabel": _ALIAS,
    "http://schema.org/description": _DESCRIPTION,
    "https://schema.org/description": _DESCRIPTION,
    RDFS + "comment": _DESCRIPTION,
}
_STRING_TYPES = (None, XSD + "string")
_WIKIDATA = "http://www.wikidata.org/"
_WIKIDATA_IRI = re.compile(
    r"http://www\.wikidata\.org/(?:entity/([QPLM][1-9][0-9]*(?:-[SF][1-9][0-9]*)?)"
    r"|prop/direct(?:-normalized)?/(P[1-9][0-9]*))"
)
_CACHE_LIMIT = 1 << 18
_new = tuple.__new__  # builds a NamedTuple record without its Python-level __new__


def wikidata_key(iri: str) -> str:
    """The key of an IRI or blank node: Wikidata entity/property IRIs shortened to their id.

    ``http://www.wikidata.org/entity/Q42`` -> ``"Q42"``,
    ``http://www.wikidata.org/prop/direct/P31`` (and ``prop/direct-normalized/``,
    ``entity/P31``) -> ``"P31"``; anything else is returned unchanged.
    """
    if iri.startswith(_WIKIDATA):
        m = _WIKIDATA_IRI.fullmatch(iri)
        if m is not None:
            return m.group(1) or m.group(2)
    return iri


def _is_pid(key: str) -> bool:
    return key[:1] == "P" and key[1:].isdigit()


class _PropertyLabels:
    """The best label/description and the aliases of one Wikidata property, by language rank."""

    __slots__ = ("label", "label_rank", "aliases", "description", "description_rank")

    def __init__(self) -> None:
        self.label: str | None = None
        self.label_rank = 1 << 30
        self.aliases: list[tuple[str, str | None]] = []
        self.description: str | None = None
        self.description_rank = 1 << 30


class RecordMapper:
    """The term -> record rules of the module docstring, with their state for one read.

    ctx: read context; uses ``options.languages`` (label languages, most
    preferred first) and ``options.properties`` (relation keys of the triples to
    keep, None for all). :meth:`records` maps triples; :meth:`text` is the rule
    for a literal of a label/alias/description predicate (the fused fast
    N-Triples reader calls it, ``key_of`` and ``unwanted`` directly);
    :meth:`finish` gives the Wikidata property records once all triples are seen.
    """

    def __init__(self, ctx: ReadContext):
        self.keep = ctx.options.properties
        self.text_kind = TEXT_PREDICATES.get
        self.key_of = wikidata_key  # uncached, for callers with their own cache
        self._preferred = {lang.lower(): (i, lang) for i, lang in enumerate(ctx.options.languages)}
        # language tag as written -> (rank, name in options.languages) or None when not wanted
        self._lang_info: dict[str | None, tuple[int, str] | tuple[int, None] | None] = {
            None: (len(self._preferred), None)
        }
        self._properties: dict[str, _PropertyLabels] = {}
        self._keys: dict[str, str] = {}  # IRI -> key, bounded
        #: language tags seen and not wanted (callers may skip :meth:`text` for them)
        self.unwanted: set[str] = set()

    def key(self, iri: str) -> str:
        """``wikidata_key(iri)``, cached (the cache is cleared when it grows past a limit)."""
        key = self._keys.get(iri)
        if key is None:
            if len(self._keys) > _CACHE_LIMIT:
                self._keys.clear()
            key = self._keys[iri] = wikidata_key(iri)
        return key

    def text(self, skey: str, kind: int, value: str, lang: str | None, datatype: str | None) -> Entity | None:
        """The record for a label/alias/description literal of subject ``skey`` (None: none now)."""
        if lang in self._lang_info:
            info = self._lang_info[lang]
        else:
            info = self._preferred.get(lang.lower())  # type: ignore[union-attr]
            if len(self._lang_info) < 4096:
                self._lang_info[lang] = info
                if info is None:
                    self.unwanted.add(lang)  # type: ignore[arg-type]
        if info is None or (lang is None and datatype not in _STRING_TYPES):
            return None
        rank, name = info
        if _is_pid(skey):
            rel = self._properties.get(skey)
            if rel is None:
                rel = self._properties[skey] = _PropertyLabels()
            if kind == _LABEL and rank < rel.label_rank:
                rel.label, rel.label_rank = value, rank
            elif kind == _DESCRIPTION and rank < rel.description_rank:
                rel.description, rel.description_rank = value, rank
            elif kind == _ALIAS and (value, name) not in rel.aliases:
                rel.aliases.append((value, name))
            return None
        if kind == _LABEL:
            return Entity(skey, label=value, lang=name)
        if kind == _ALIAS:
            return Entity(skey, aliases=((value, name),))
        return Entity(skey, description=value, lang=name)

    def records(self, triples: Iterable[TermTriple]) -> Iterator[Record]:
        """Map term triples to records (the Wikidata property records come from :meth:`finish`)."""
        keep, text_kind, text, key = self.keep, self.text_kind, self.text, self.key
        new, triple, attribute, no_split, iri = _new, Triple, Attribute, NO_SPLIT, str
        last_s, skey = None, ""
        for s, p, o in triples:
            if s != last_s:
                last_s, skey = s, key(s)
            if type(o) is iri:
                pkey = key(p)
                if keep is None or pkey in keep:
                    yield new(triple, (skey, pkey, key(o), no_split))  # type: ignore[arg-type]
                continue
            kind = text_kind(p)
            if kind is None:
                yield new(attribute, (skey, key(p), o[0]))
            elif (record := text(skey, kind, *o)) is not None:  # type: ignore[misc]
                yield record

    def finish(self) -> Iterator[Relation]:
        """One ``Relation`` per Wikidata property seen with labels, best-ranked label first."""
        for pid, rel in self._properties.items():
            yield Relation(pid, rel.label, tuple(rel.aliases), rel.description)


def rdf_to_records(triples: Iterable[TermTriple], ctx: ReadContext) -> Iterator[Record]:
    """Map RDF term triples to records (see the module docstring for the rules).

    triples: ``(subject, predicate, object)`` in the term representation of
        :mod:`kept.kg.sources.ntriples`, from any engine.
    ctx: read context (``options.languages``, ``options.properties``; see :class:`RecordMapper`).
    """
    mapper = RecordMapper(ctx)
    yield from mapper.records(triples)
    yield from mapper.finish()


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
        if isinstance(s, str) and s.startswith("_:"):
            s = bnodes.setdefault(s, f"_:{path.name}#{len(bnodes)}")
        if isinstance(o, str) and o.startswith("_:"):
            o = bnodes.setdefault(o, f"_:{path.name}#{len(bnodes)}")
        yield s, p, o  # type: ignore[misc]


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
