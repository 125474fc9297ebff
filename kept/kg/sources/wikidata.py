"""Streaming reader for Wikidata JSON dumps (``latest-all.json[.gz|.bz2]``).

Format handling
    A dump is one JSON array written one entity per line: the first line is
    ``[``, each following line is one entity object followed by ``,`` (the last
    one without), and the last line is ``]``. Each line is decoded on its own
    by msgspec into typed structs (:class:`_Entity`) straight from the raw
    bytes, after stripping the line ending and the trailing comma: the parts
    kept needs are decoded, the rest (references, qualifiers, labels in other
    languages) is validated as JSON and skipped in C, about 3x faster than
    building the whole object with a general JSON parser. The statements of a
    property are decoded only when they hold an item value (their raw bytes
    contain ``"wikibase-entityid"``); the others are checked as JSON only. ``[``, ``]`` and blank lines are
    skipped, and a missing closing ``]`` is accepted, so heads of dumps
    (``zcat dump.json.gz | head -n 1000``) read fine. A line that is not valid
    JSON (invalid UTF-8 included), or not an object with ``"id"`` and
    ``"type"``, or an entity whose labels or claims are not shaped as Wikidata
    writes them, is reported to the bad-line budget (``--max-bad-lines``) and
    skipped.

What is read
    * items (``"type": "item"``, Q ids) -> :class:`Entity`, then one
      :class:`Triple` ``(QID, PID, QID)`` per item-valued statement, then
      :class:`Attribute` ``(QID, "sitelink:<lang>wiki", title)`` for the
      Wikipedia of each chosen language that has a page about the item;
    * properties (``"type": "property"``, P ids) -> :class:`Relation`;
    * anything else (lexemes, media info, ...) is skipped silently.

    Only statements whose main snak has a value (not ``novalue``/``somevalue``)
    that is an item become triples; property-, lexeme-, form- and sense-valued
    statements and literal values are skipped. A property whose main snaks
    declare a datatype other than ``wikibase-item`` is skipped without looking
    at its statements. The same (property, target) pair stated twice on one
    item (e.g. with different qualifiers) gives one triple.

Labels
    ``options.languages`` lists the wanted languages, most preferred first. The
    label is the one in the first of them that has a label (``Entity.lang`` says
    which); the aliases are the labels in the other chosen languages that differ
    from it and the aliases in all chosen languages, in preference order,
    without repeated texts, as ``(text, language)`` pairs; the description is
    the one in the first chosen language that has a description.

Ranks (``options.ranks``)
    * ``"non-deprecated"`` (default): preferred and normal statements;
    * ``"truthy"``: per item and property, only the best rank present:
      the preferred statements if there is any, else the normal ones
      (Wikidata's "truthy" statements); deprecated statements never;
    * ``"all"``: every statement, deprecated included.

Memory
    The reader holds one line (and its parsed entity) at a time: its memory is
    bounded by the largest entity in the dump (a few MB), not by the dump size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from kept.kg.sources import ReadContext
from kept.kg.sources.records import NO_SPLIT, Attribute, Entity, Record, Relation, Triple

__all__ = ["RANKS", "read_wikidata_json"]

#: accepted values of ``ReaderOptions.ranks``
RANKS = ("non-deprecated", "truthy", "all")

_STRIP = b" \t\r\n,"
_SKIP = frozenset({b"", b"[", b"]", b"\xef\xbb\xbf["})
_NON_DEPRECATED, _PREFERRED, _NORMAL = ("preferred", "normal"), ("preferred",), ("normal",)
_new = tuple.__new__  # builds a record without NamedTuple's slower Python-level __new__


class _Text(msgspec.Struct):
    value: str


class _SiteLink(msgspec.Struct):
    title: str


class _EntityIdValue(msgspec.Struct):
    id: str | None = None
    numeric_id: int | None = msgspec.field(default=None, name="numeric-id")
    entity_type: str | None = msgspec.field(default=None, name="entity-type")


class _DataValue(msgspec.Struct):
    type: str
    # Item values are objects; other objects (time, quantity, ...) decode to a
    # struct of Nones since unknown fields are skipped; strings stay strings.
    value: _EntityIdValue | str | int | float | list[msgspec.Raw] | None = None


class _Snak(msgspec.Struct):
    snaktype: str
    datatype: str | None = None
    datavalue: _DataValue | None = None


class _Statement(msgspec.Struct):
    mainsnak: _Snak
    rank: str = "normal"


_RawMap = dict[str, msgspec.Raw] | list[msgspec.Raw]  # dumps write an empty map as []


class _Entity(msgspec.Struct):
    """The parts of a Wikidata entity kept reads; per-language maps stay raw until needed."""

    id: str
    type: str
    labels: _RawMap = {}
    aliases: _RawMap = {}
    descriptions: _RawMap = {}
    # Claims stay raw per property: only those that can hold item values are decoded
    # (most statements are strings, dates and quantities, which kept skips).
    claims: _RawMap = {}
    sitelinks: _RawMap = {}


_decode_entity = msgspec.json.Decoder(_Entity).decode
_decode_text = msgspec.json.Decoder(_Text).decode
_decode_texts = msgspec.json.Decoder(list[_Text]).decode
_decode_sitelink = msgspec.json.Decoder(_SiteLink).decode
_decode_statements = msgspec.json.Decoder(list[_Statement]).decode
_ITEM_MARK = b'"wikibase-entityid"'  # present in the raw claims of every item-valued property
_ERRORS = (msgspec.DecodeError, TypeError, KeyError)


def _problem(line: bytes, exc: Exception) -> str:
    """A readable reason why ``line`` is not a Wikidata entity (error path only)."""
    try:
        obj = json.loads(line)
    except ValueError as json_exc:
        return f"invalid JSON: {json_exc}"
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or "type" not in obj:
        return 'not a Wikidata entity: expected a JSON object with "id" and "type"'
    return f"malformed {obj['type']} {obj['id']}: {exc}"


def read_wikidata_json(path: Path, ctx: ReadContext) -> Iterator[list[Record]]:
    """Stream the records of one Wikidata JSON dump.

    :param path: the dump: ``.json``, ``.json.gz``, ``.json.bz2`` or ``.json.xz``.
    :param ctx: the read context. Uses ``ctx.options.languages`` (label
        languages, most preferred first; default ``("en",)``),
        ``ctx.options.ranks`` (``"non-deprecated"`` by default, ``"truthy"`` or
        ``"all"``; see the module docstring), ``ctx.options.properties`` (keep
        only statements of these PIDs; default None: all) and ``ctx.bad`` (the
        malformed-line budget).
    :yields: one list per entity: for an item its :class:`Entity`, its
        :class:`Triple` records and its sitelink :class:`Attribute` records; for
        a property one :class:`Relation` (:func:`kept.kg.sources.read` flattens).
    :raises ValueError: for an unknown ``ranks`` value.
    :raises SourceError: for a damaged or empty file, or a malformed line past
        the ``--max-bad-lines`` budget.
    """
    opts = ctx.options
    if opts.ranks not in RANKS:
        raise ValueError(f"unknown ranks {opts.ranks!r}; expected one of {', '.join(RANKS)}")
    langs = tuple(opts.languages)
    sites = tuple(dict.fromkeys(lang.replace("-", "_") + "wiki" for lang in langs))
    props = opts.properties
    ranks = opts.ranks
    report = ctx.bad.report
    with ctx.open(path) as f:
        for line in f.lines():
            s = line.strip(_STRIP)
            if len(s) < 5 and s in _SKIP:  # (hashing a whole entity line would cost ~10%)
                continue
            try:
                if not s.isascii():  # dumps escape non-ASCII; check UTF-8 of the skipped parts too
                    s.decode("utf-8")
                entity = _decode_entity(s)
                if entity.type != "item" and entity.type != "property":
                    continue
                records = _records(entity, langs, sites, props, ranks)
            except UnicodeDecodeError as exc:
                report(path, f.lineno, f"invalid UTF-8 at byte {exc.start} of the line")
                continue
            except _ERRORS as exc:
                report(path, f.lineno, _problem(s, exc))
                continue
            yield records  # one list per entity: the builder takes lists (cheaper than a step per record)


def _records(
    entity: _Entity,
    langs: tuple[str, ...],
    sites: tuple[str, ...],
    props: frozenset[str] | None,
    ranks: str,
) -> list[Record]:
    """The records of one decoded entity (an item or a property)."""
    key = entity.id
    label, lang, aliases = _label(_as_map(entity.labels), _as_map(entity.aliases), langs)
    description = _first(_as_map(entity.descriptions), langs)
    if entity.type == "property":
        return [Relation(key, label, aliases, description)]
    out: list[Record] = [Entity(key, label, aliases, description, lang)]
    if entity.claims:
        _triples(key, _as_map(entity.claims), props, ranks, out)
    sitelinks = _as_map(entity.sitelinks)
    for site in sites:
        link = sitelinks.get(site)
        if link:
            out.append(Attribute(key, "sitelink:" + site, _decode_sitelink(link).title))
    return out


def _as_map(value: dict | list) -> dict:
    """A per-language map; Wikidata writes an empty one as ``[]``."""
    if type(value) is list:
        if value:
            raise TypeError("expected a JSON object, got a non-empty array")
        return {}
    return value


def _label(
    labels: dict[str, msgspec.Raw], aliases: dict[str, msgspec.Raw], langs: Sequence[str]
) -> tuple[str | None, str | None, tuple[tuple[str, str | None], ...]]:
    """``(label, its language, aliases)`` from the ``labels`` and ``aliases`` maps."""
    label = lang = None
    for lg in langs:
        raw = labels.get(lg)
        if raw:
            label, lang = _decode_text(raw).value, lg
            break
    out: list[tuple[str, str | None]] = []
    seen = {label}
    for lg in langs:
        if lg != lang:
            raw = labels.get(lg)
            if raw:
                text = _decode_text(raw).value
                if text not in seen:
                    seen.add(text)
                    out.append((text, lg))
        raw = aliases.get(lg)
        for value in _decode_texts(raw) if raw else ():
            if value.value not in seen:
                seen.add(value.value)
                out.append((value.value, lg))
    return label, lang, tuple(out)


def _first(values: dict[str, msgspec.Raw], langs: Sequence[str]) -> str | None:
    """The text in the most preferred language that has one (descriptions)."""
    for lg in langs:
        raw = values.get(lg)
        if raw:
            return _decode_text(raw).value
    return None


def _triples(
    key: str, claims: dict[str, msgspec.Raw], props: frozenset[str] | None, ranks: str, out: list[Record]
) -> None:
    """Append to ``out`` the item-to-item triples of one item's ``claims`` map."""
    append = out.append
    keep: tuple[str, ...] | None = None if ranks == "all" else _NON_DEPRECATED
    for pid, raw in claims.items():
        if props is not None and pid not in props:
            continue
        data = bytes(raw)  # (msgspec.Raw has no substring search; the copy is a memcpy)
        if _ITEM_MARK not in data:  # no item value among this property's statements
            continue
        statements = _decode_statements(data)
        if not statements:
            continue
        datatype = statements[0].mainsnak.datatype
        if datatype is not None and datatype != "wikibase-item":
            continue
        if ranks == "truthy":
            keep = _NORMAL
            for st in statements:
                if st.rank == "preferred":
                    keep = _PREFERRED
                    break
        tails: set[str] = set()
        for st in statements:
            if keep is not None and st.rank not in keep:
                continue
            snak = st.mainsnak
            if snak.snaktype != "value" or snak.datavalue is None or snak.datavalue.type != "wikibase-entityid":
                continue
            value = snak.datavalue.value
            if type(value) is not _EntityIdValue:
                continue
            tail = value.id
            if tail is None and value.entity_type == "item" and value.numeric_id is not None:
                tail = f"Q{value.numeric_id}"
            if tail and tail[0] == "Q" and tail not in tails:
                tails.add(tail)
                append(_new(Triple, (key, pid, tail, NO_SPLIT)))
