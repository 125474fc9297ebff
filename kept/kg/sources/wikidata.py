"""Streaming reader for Wikidata JSON dumps (``latest-all.json[.gz|.bz2]``).

Format handling
    A dump is one JSON array written one entity per line: the first line is
    ``[``, each following line is one entity object followed by ``,`` (the last
    one without), and the last line is ``]``. Each line is parsed on its own
    with :func:`orjson.loads` straight from the raw bytes, after stripping the
    line ending and the trailing comma. ``[``, ``]`` and blank lines are
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

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from kept.kg.sources import ReadContext
from kept.kg.sources.records import Attribute, Entity, Record, Relation, Triple

__all__ = ["RANKS", "read_wikidata_json"]

#: accepted values of ``ReaderOptions.ranks``
RANKS = ("non-deprecated", "truthy", "all")

_STRIP = b" \t\r\n,"
_SKIP = frozenset({b"", b"[", b"]", b"\xef\xbb\xbf["})
_SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError)


def read_wikidata_json(path: Path, ctx: ReadContext) -> Iterator[Record]:
    """Stream the records of one Wikidata JSON dump.

    :param path: the dump: ``.json``, ``.json.gz``, ``.json.bz2`` or ``.json.xz``.
    :param ctx: the read context. Uses ``ctx.options.languages`` (label
        languages, most preferred first; default ``("en",)``),
        ``ctx.options.ranks`` (``"non-deprecated"`` by default, ``"truthy"`` or
        ``"all"``; see the module docstring), ``ctx.options.properties`` (keep
        only statements of these PIDs; default None: all) and ``ctx.bad`` (the
        malformed-line budget).
    :yields: per item an :class:`Entity`, its :class:`Triple` records and its
        sitelink :class:`Attribute` records; per property a :class:`Relation`.
    :raises ValueError: for an unknown ``ranks`` value.
    :raises SourceError: for a damaged or empty file, or a malformed line past
        the ``--max-bad-lines`` budget.
    """
    opts = ctx.options
    if opts.ranks not in RANKS:
        raise ValueError(f"unknown ranks {opts.ranks!r}; expected one of {', '.join(RANKS)}")
    langs = tuple(opts.languages)
    sites = tuple(dict.fromkeys((lang.replace("-", "_") + "wiki", lang) for lang in langs))
    props = opts.properties
    ranks = opts.ranks
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    report = ctx.bad.report
    with ctx.open(path) as f:
        for line in f.lines():
            s = line.strip(_STRIP)
            if s in _SKIP:
                continue
            try:
                obj = loads(s)
            except decode_error as exc:
                report(path, f.lineno, f"invalid JSON: {exc}")
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or "type" not in obj:
                report(path, f.lineno, 'not a Wikidata entity: expected a JSON object with "id" and "type"')
                continue
            kind = obj["type"]
            if kind != "item" and kind != "property":
                continue
            try:
                records = _records(obj, kind, langs, sites, props, ranks)
            except _SHAPE_ERRORS as exc:
                report(path, f.lineno, f"malformed {kind} {obj['id']}: {type(exc).__name__}: {exc}")
                continue
            yield from records


def _records(
    obj: dict[str, Any],
    kind: str,
    langs: tuple[str, ...],
    sites: tuple[tuple[str, str], ...],
    props: frozenset[str] | None,
    ranks: str,
) -> list[Record]:
    """The records of one parsed entity (an item or a property)."""
    key = obj["id"]
    label, lang, aliases = _label(obj.get("labels") or {}, obj.get("aliases") or {}, langs)
    description = _first(obj.get("descriptions") or {}, langs)
    if kind == "property":
        return [Relation(key, label, aliases, description)]
    out: list[Record] = [Entity(key, label, aliases, description, lang)]
    claims = obj.get("claims")
    if claims:
        _triples(key, claims, props, ranks, out)
    sitelinks = obj.get("sitelinks")
    if sitelinks:
        for site, _ in sites:
            link = sitelinks.get(site)
            if link:
                out.append(Attribute(key, "sitelink:" + site, link["title"]))
    return out


def _label(
    labels: dict[str, Any], aliases: dict[str, Any], langs: Sequence[str]
) -> tuple[str | None, str | None, tuple[tuple[str, str | None], ...]]:
    """``(label, its language, aliases)`` from the ``labels`` and ``aliases`` maps."""
    label = lang = None
    for lg in langs:
        value = labels.get(lg)
        if value:
            label, lang = value["value"], lg
            break
    out: list[tuple[str, str | None]] = []
    seen = {label}
    for lg in langs:
        if lg != lang:
            value = labels.get(lg)
            if value and value["value"] not in seen:
                seen.add(value["value"])
                out.append((value["value"], lg))
        for value in aliases.get(lg) or ():
            text = value["value"]
            if text not in seen:
                seen.add(text)
                out.append((text, lg))
    return label, lang, tuple(out)


def _first(values: dict[str, Any], langs: Sequence[str]) -> str | None:
    """The text in the most preferred language that has one (descriptions)."""
    for lg in langs:
        value = values.get(lg)
        if value:
            return value["value"]
    return None


def _triples(key: str, claims: dict[str, Any], props: frozenset[str] | None, ranks: str, out: list[Record]) -> None:
    """Append to ``out`` the item-to-item triples of one item's ``claims`` map."""
    keep_deprecated = ranks == "all"
    truthy = ranks == "truthy"
    for pid, statements in claims.items():
        if props is not None and pid not in props:
            continue
        if not statements:
            continue
        datatype = statements[0]["mainsnak"].get("datatype")
        if datatype is not None and datatype != "wikibase-item":
            continue
        best = None
        if truthy:
            best = "normal"
            for st in statements:
                if st.get("rank") == "preferred":
                    best = "preferred"
                    break
        tails: set[str] = set()
        for st in statements:
            rank = st.get("rank")
            if best is not None:
                if rank != best:
                    continue
            elif rank == "deprecated" and not keep_deprecated:
                continue
            snak = st["mainsnak"]
            if snak.get("snaktype") != "value":
                continue
            data = snak["datavalue"]
            if data.get("type") != "wikibase-entityid":
                continue
            value = data["value"]
            tail = value.get("id")
            if tail is None and value.get("entity-type") == "item":
                tail = f"Q{value['numeric-id']}"
            if tail and tail[0] == "Q" and tail not in tails:
                tails.add(tail)
                out.append(Triple(key, pid, tail))
