"""Streaming reader for Wikidata JSON dumps (``latest-all.json[.gz|.bz2]``).

Format handling
    A dump is one JSON array written one entity per line: the first line is
    ``[``, each following line is one entity object followed by ``,`` (the last
    one without), and the last line is ``]``. Each line, stripped of its line
    ending and trailing comma, is parsed by simdjson (``pysimdjson``), which
    validates the whole line (JSON syntax and UTF-8) in C and hands back lazy
    proxies: only the parts kept reads (labels, aliases and descriptions in the
    chosen languages, item-valued statements, sitelinks) become Python objects;
    references, qualifiers, other languages and literal-valued statements are
    never converted. A property's statements are walked only when its first main
    snak declares the ``wikibase-item`` datatype (or declares none, as in old
    dumps). One parser is reused for all lines, so no proxy may outlive the line
    it comes from: :func:`_line_records` copies what it needs into records.
    A line simdjson refuses is handed to Python's ``json`` module, which names
    the problem or, for valid JSON beyond simdjson's limits (integers over 64
    bits), decodes it for the same walk. Nesting deeper than :data:`MAX_DEPTH`
    (simdjson's limit) is an error whatever ``sys.getrecursionlimit()`` is: simdjson's
    depth error is the verdict, and the over-64-bit case counts the depth itself
    before Python's json sees the line. ``[``, ``]`` and blank lines are
    skipped, and a missing closing ``]`` is accepted, so heads of dumps
    (``zcat dump.json.gz | head -n 1000``) read fine. A line that is not valid
    JSON (invalid UTF-8 included), or not an object with ``"id"`` and
    ``"type"``, or an entity whose parts that kept reads are not shaped as
    Wikidata writes them, is reported to the bad-line budget (``--max-bad-lines``)
    and skipped. What is checked is what is read: the label, alias, description
    and sitelink objects of the chosen languages, and every statement of each
    property walked (see :func:`_triples`); the other parts are checked as JSON
    only.

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
    at its other statements. The same (property, target) pair stated twice on
    one item (e.g. with different qualifiers) gives one triple.

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
    The reader holds one line (and its parsed form) at a time: its memory is
    bounded by the largest entity in the dump (a few MB), not by the dump size.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import simdjson

from kept.kg.sources import ReadContext
from kept.kg.sources.records import Attribute, Entity, Record, Relation
from kept.kg.sources.wikidata_claims import _ARRAY, _MISSING, _OBJECT, _Malformed, _triples

__all__ = ["RANKS", "read_wikidata_json"]

#: accepted values of ``ReaderOptions.ranks``
RANKS = ("non-deprecated", "truthy", "all")

#: the deepest nesting of arrays and objects a line may have (simdjson's default)
MAX_DEPTH = 1024
_NESTED = f"invalid JSON: nested too deeply (over {MAX_DEPTH} levels)"
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")
_STRIP = b" \t\r\n,"
_SKIP = frozenset({b"", b"[", b"]", b"\xef\xbb\xbf["})
_NO_MAP: dict = {}  # an absent or empty (``[]``) per-language map
_NOT_ENTITY = 'not a Wikidata entity: expected a JSON object with "id" and "type"'


class _BadLine(ValueError):
    """A line that is not a Wikidata entity; the message says why (reported with file:line)."""

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
    parser = simdjson.Parser()  # reused: its buffers grow to the largest line once
    with ctx.open(path) as f:
        for line in f.lines():
            end = len(line)
            while end and line[end - 1] in _STRIP:  # the trailing comma (simdjson skips other whitespace)
                end -= 1
            if end < 5 and line[:end].strip(_STRIP) in _SKIP:
                continue
            # A view without the comma, not a copy: simdjson copies the line into its padded buffer.
            text = memoryview(line)[:end] if end < len(line) else line
            try:
                records = _line_records(parser, text, langs, sites, props, ranks)
            except _BadLine as exc:
                report(path, f.lineno, str(exc))
                # The error's traceback may still hold proxies into the parser's document,
                # which would make the next parse fail: go on with a fresh parser.
                parser = simdjson.Parser()
                continue
            if records is not None:
                yield records  # one list per entity: the builder takes lists (cheaper than a step per record)


def _line_records(
    parser: simdjson.Parser,
    line: bytes | memoryview,
    langs: tuple[str, ...],
    sites: tuple[str, ...],
    props: frozenset[str] | None,
    ranks: str,
) -> list[Record] | None:
    """The records of one entity line (None for an entity type kept skips).

    The proxies into ``parser``'s document live only in this call (and the ones it
    makes), so the parser is free again when it returns.
    :raises _BadLine: for a line that is not a well-formed Wikidata entity.
    """
    try:
        doc = parser.parse(line)
    except ValueError as exc:  # not JSON (UnicodeDecodeError included)
        raise _BadLine(_not_json(line, exc)) from None
    except RuntimeError as exc:  # JSON beyond simdjson's limits: an integer over 64 bits, nesting over 1024 levels
        if str(exc).startswith("DEPTH_ERROR"):
            raise _BadLine(_NESTED) from None
        if not str(exc).startswith("BIGINT_ERROR"):  # only that case goes to Python's json
            raise _BadLine(f"invalid JSON: {exc}") from None
        doc = _loads(line, exc)
    key = doc.get("id") if isinstance(doc, _OBJECT) else None
    kind = doc.get("type", _MISSING) if type(key) is str else _MISSING
    if kind is _MISSING:
        raise _BadLine(_NOT_ENTITY)
    if kind != "item" and kind != "property":
        if type(kind) is not str:
            raise _BadLine(f"malformed entity {key}: {_Malformed('type', 'a string', kind)}")
        return None
    try:
        label, lang, aliases = _label(_map(doc, "labels"), _map(doc, "aliases"), langs)
        description = _first(_map(doc, "descriptions"), langs)
        if kind == "property":
            return [Relation(key, label, aliases, description)]
        out: list[Record] = [Entity(key, label, aliases, description, lang)]
        _triples(key, _map(doc, "claims"), props, ranks, out)
        _sitelinks(key, _map(doc, "sitelinks"), sites, out)
    except _Malformed as exc:
        raise _BadLine(f"malformed {kind} {key}: {exc}") from None
    return out


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _not_json(line: bytes | memoryview, exc: Exception) -> str:
    """Why simdjson refused ``line`` (error path): the UTF-8 error's byte offset, else
    the problem as Python's json words it (with line and column), else simdjson's."""
    try:
        json.loads(bytes(line).strip(_STRIP).decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as utf8_exc:
        return f"invalid UTF-8 at byte {utf8_exc.start} of the line"
    except ValueError as json_exc:
        return f"invalid JSON: {json_exc}"
    except RecursionError:
        return _NESTED
    return f"invalid JSON: {exc}"  # JSON to Python only: a number out of range, a lone surrogate escape


def _loads(line: bytes | memoryview, exc: RuntimeError) -> object:
    """Python's json on a line simdjson could not hold (``exc``: an integer over 64 bits,
    deep nesting); the walk that follows takes dicts and lists as it takes proxies.

    The depth rule is :data:`MAX_DEPTH`, counted here, not Python's recursion limit:
    the limit is raised for the call when it is lower than the line needs.
    """
    data = bytes(line)
    if _depth(data) > MAX_DEPTH:
        raise _BadLine(_NESTED)
    limit = sys.getrecursionlimit()
    try:
        if limit < MAX_DEPTH + 200:
            sys.setrecursionlimit(MAX_DEPTH + 200)
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _BadLine(_not_json(line, exc)) from None
    finally:
        sys.setrecursionlimit(limit)


def _depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text ``data`` (strings skipped)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b'""', data)):
        if bracket in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _map(doc, name: str):
    """The per-language (or per-property, per-site) map ``doc[name]``; Wikidata writes
    an empty one as ``[]``, and an entity may leave it out."""
    value = doc.get(name, _NO_MAP)
    if isinstance(value, _OBJECT):
        return value
    if isinstance(value, _ARRAY) and not value:
        return _NO_MAP
    raise _Malformed(name, "an object", value)


def _text(value, where: str) -> str:
    """The ``"value"`` string of one ``{"language": ..., "value": ...}`` object."""
    if not isinstance(value, _OBJECT):
        raise _Malformed(where, "an object", value)
    text = value.get("value", _MISSING)
    if type(text) is not str:
        raise _Malformed(where + ".value", "a string", text)
    return text


def _label(labels, aliases, langs: Sequence[str]) -> tuple[str | None, str | None, tuple[tuple[str, str | None], ...]]:
    """``(label, its language, aliases)`` from the ``labels`` and ``aliases`` maps."""
    label = lang = None
    for lg in langs:
        value = labels.get(lg, _MISSING)
        if value is not _MISSING:
            label, lang = _text(value, "labels." + lg), lg
            break
    out: list[tuple[str, str | None]] = []
    seen = {label}
    for lg in langs:
        if lg != lang:
            value = labels.get(lg, _MISSING)
            if value is not _MISSING:
                text = _text(value, "labels." + lg)
                if text not in seen:
                    seen.add(text)
                    out.append((text, lg))
        values = aliases.get(lg, _MISSING)
        if values is _MISSING:
            continue
        if not isinstance(values, _ARRAY):
            raise _Malformed("aliases." + lg, "an array", values)
        for i, value in enumerate(values):
            text = _text(value, f"aliases.{lg}[{i}]")
            if text not in seen:
                seen.add(text)
                out.append((text, lg))
    return label, lang, tuple(out)


def _first(values, langs: Sequence[str]) -> str | None:
    """The text in the most preferred language that has one (descriptions)."""
    for lg in langs:
        value = values.get(lg, _MISSING)
        if value is not _MISSING:
            return _text(value, "descriptions." + lg)
    return None


def _sitelinks(key: str, sitelinks, sites: Sequence[str], out: list[Record]) -> None:
    """Append to ``out`` the ``sitelink:<site>`` title of each chosen site the item has."""
    for site in sites:
        link = sitelinks.get(site, _MISSING)
        if link is _MISSING:
            continue
        if not isinstance(link, _OBJECT):
            raise _Malformed("sitelinks." + site, "an object", link)
        title = link.get("title", _MISSING)
        if type(title) is not str:
            raise _Malformed(f"sitelinks.{site}.title", "a string", title)
        out.append(Attribute(key, "sitelink:" + site, title))
