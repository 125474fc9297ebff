"""RDF terms -> kept records: which predicates are labels, aliases and descriptions, Wikidata IRIs as QIDs/PIDs, and the fast N-Triples path fused with the mapping."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote

from kept.kg.sources import ReadContext
from kept.kg.sources.ntriples import (  # the fast path shares the line parser's patterns
    _BATCH,
    _FAST,
    _IRI_CACHE_LIMIT,
    _VALID_IRI,
    _XSD_NORMALIZED_STRING,
    _XSD_TOKEN,
    XSD,
    TermTriple,
    _new_literal,
    _slow_line,
    _whitespace_facet,
)
from kept.kg.sources.records import NO_SPLIT, Attribute, Entity, Record, Relation, Triple

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
_KEPT = "urn:kept:"
_KEPT_PREFIXES = ("urn:kept:entity:", "urn:kept:relation:")
_new = tuple.__new__  # builds a NamedTuple record without its Python-level __new__


def wikidata_key(iri: str) -> str:
    """The key of an IRI or blank node: Wikidata entity/property IRIs shortened to their id.

    ``http://www.wikidata.org/entity/Q42`` -> ``"Q42"``,
    ``http://www.wikidata.org/prop/direct/P31`` (and ``prop/direct-normalized/``,
    ``entity/P31``) -> ``"P31"``; ``urn:kept:entity:<quoted key>`` and ``urn:kept:relation:<quoted key>``
    (how ``kept kg export`` writes other keys) -> the key; anything else is returned unchanged.
    """
    if iri.startswith(_WIKIDATA):
        m = _WIKIDATA_IRI.fullmatch(iri)
        if m is not None:
            return m.group(1) or m.group(2)
    if iri.startswith(_KEPT):  # kept's own export of a non-Wikidata key (kept.kg.graph.entity_iri)
        for prefix in _KEPT_PREFIXES:
            if iri.startswith(prefix):
                return unquote(iri[len(prefix):])
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
        self.key_of = self._key_of  # uncached, for callers with their own cache
        #: keys of kept-exported relation IRIs (``urn:kept:relation:``): their names are relation names
        self.relation_keys: set[str] = set()
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
            key = self._keys[iri] = self._key_of(iri)
        return key

    def _key_of(self, iri: str) -> str:
        key = wikidata_key(iri)
        if iri.startswith(_KEPT_PREFIXES[1]):
            self.relation_keys.add(key)
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
        if _is_pid(skey) or skey in self.relation_keys:
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


def iter_fast_records(path: Path, ctx: ReadContext, mapper: RecordMapper) -> Iterator[list[Record]]:
    """The records of an N-Triples file, in lists: :func:`iter_fast_ntriples` fused with ``mapper``.

    Flattened, gives exactly ``rdf_to_records(iter_fast_ntriples(path, ctx), ctx)``
    (the tests check it), in one pass: a fast-tier line becomes its record
    directly, its IRIs checked and shortened to keys in one cached lookup,
    without building terms; any other line goes through the exact tier and
    ``mapper.records``. Records come in lists of up to ``_BATCH`` (the builder
    takes lists: a generator step per list, not per record); the last list
    ends with ``mapper.finish()``.

    path: the file (plain or .gz/.bz2/.xz), opened through ``ctx.open``.
    ctx: read context; malformed lines go to ``ctx.bad`` with their line number.
    mapper: the :class:`~kept.kg.sources.rdf.RecordMapper` of this read.
    """
    fast = _FAST.fullmatch
    valid_iri = _VALID_IRI.fullmatch
    wikidata_key = mapper.key_of
    keys: dict[str, str] = {}  # IRI text that passed the fast tier's check -> key
    known = keys.get

    def admit(iri: str) -> str | None:
        if valid_iri(iri) is None:
            return None
        if len(keys) > _IRI_CACHE_LIMIT:
            keys.clear()
        key = keys[iri] = wikidata_key(iri)
        return key

    keep, text_kind, text, unwanted = mapper.keep, mapper.text_kind, mapper.text, mapper.unwanted
    new, triple, attribute, no_split, decode = _new_literal, Triple, Attribute, NO_SPLIT, bytes.decode
    batch, facet_types = _BATCH, (_XSD_TOKEN, _XSD_NORMALIZED_STRING)
    last_s, skey = None, ""
    out: list[Record] = []
    add = out.append
    with ctx.open(path) as f:
        for raw in f.lines():  # f.text_lines() inlined: this loop is the hot path
            if len(out) >= batch:
                yield out
                out = []
                add = out.append
            try:
                line = decode(raw)  # strict UTF-8
            except UnicodeDecodeError as exc:
                ctx.bad.report(path, f.lineno, f"invalid UTF-8 at byte {exc.start} of the line")
                continue
            m = fast(line)  # a trailing CR (CRLF files) is part of the fast pattern
            if m is not None:
                s, p, o, lit, lang, dt = m.groups()
                if s != last_s and (k := known(s) or admit(s)) is not None:
                    last_s, skey = s, k
                if s == last_s and (pkey := known(p) or admit(p)) is not None:
                    if o is not None:
                        if (okey := known(o) or admit(o)) is not None:
                            if keep is None or pkey in keep:
                                add(new(triple, (skey, pkey, okey, no_split)))
                            continue
                    elif dt is None or known(dt) or admit(dt):
                        if dt is not None and dt in facet_types:
                            lit = _whitespace_facet(lit, dt)
                        kind = text_kind(p)
                        if kind is None:
                            add(new(attribute, (skey, pkey, lit)))
                        elif lang not in unwanted and (record := text(skey, kind, lit, lang, dt)) is not None:
                            add(record)
                        continue
            out.extend(mapper.records(_slow_line(line, path, f, ctx)))
    out.extend(mapper.finish())
    if out:
        yield out
