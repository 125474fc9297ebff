"""Wikidata claims -> triples: statement ranks (truthy, non-deprecated, all), item-valued snaks, and the shape errors of parsed values."""

from __future__ import annotations

import simdjson

from kept.kg.sources.records import NO_SPLIT, Record, Triple

_NON_DEPRECATED, _PREFERRED, _NORMAL = ("preferred", "normal"), ("preferred",), ("normal",)
_new = tuple.__new__  # builds a record without NamedTuple's slower Python-level __new__
# A parsed value is a simdjson proxy, or a dict / list where Python's json decoded the line.
_OBJECT = (simdjson.Object, dict)
_ARRAY = (simdjson.Array, list)
_MISSING = object()  # ``get`` default: a key that is absent (a JSON null reads as None)


class _Malformed(ValueError):
    """A part of an entity that is not shaped as Wikidata writes it."""

    def __init__(self, where: str, expected: str, value: object):
        super().__init__(f"{where}: expected {expected}, got {_json_type(value)}")


def _json_type(value: object) -> str:
    """The JSON kind of a parsed value, for error messages."""
    if value is _MISSING:
        return "nothing (no such key)"
    if value is None:
        return "null"
    if isinstance(value, _OBJECT):
        return "an object"
    if isinstance(value, _ARRAY):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "a boolean" if isinstance(value, bool) else "a number"



def _triples(key: str, claims, props: frozenset[str] | None, ranks: str, out: list[Record]) -> None:
    """Append to ``out`` the item-to-item triples of one item's ``claims`` map.

    A property whose first main snak declares a datatype other than ``wikibase-item``
    is skipped after checking that snak. In the other properties every statement is
    checked up to what decides whether it is an item value: the statement and its
    main snak are objects, ``rank`` and ``snaktype`` strings, a value snak has a
    ``datavalue`` object with a string ``type``, and an entity-id value is an object
    with a string ``id`` (or, in old dumps, ``numeric-id`` and ``entity-type``).
    """
    append = out.append
    for pid in claims:
        if props is not None and pid not in props:
            continue
        statements = claims[pid]  # (a lookup by key: simdjson objects are not hash maps)
        if not isinstance(statements, _ARRAY):
            raise _Malformed("claims." + pid, "an array", statements)
        if not statements:
            continue
        try:
            datatype = statements[0]["mainsnak"].get("datatype")
        except (KeyError, TypeError, AttributeError):
            raise _statement_error(pid, 0, statements[0]) from None
        if datatype is not None and datatype != "wikibase-item":
            if type(datatype) is not str:
                raise _Malformed(f"claims.{pid}[0].mainsnak.datatype", "a string", datatype)
            continue
        if ranks == "truthy":  # the best rank present among all statements of the property
            keep = _PREFERRED if _any_preferred(statements) else _NORMAL
        else:
            keep = None if ranks == "all" else _NON_DEPRECATED
        tails: set[str] = set()
        for i, st in enumerate(statements):
            # Indexing a part that is missing or not an object raises (KeyError, TypeError,
            # AttributeError): the checks cost nothing on the well-formed path.
            try:
                snak = st["mainsnak"]
                rank = st.get("rank", "normal")
                snaktype = snak["snaktype"]
                if snaktype != "value":  # novalue / somevalue: no datavalue to read
                    kind, tail = "", None
                else:
                    datavalue = snak["datavalue"]
                    kind = datavalue["type"]
                    tail = datavalue["value"].get("id") if kind == "wikibase-entityid" else None
            except (KeyError, TypeError, AttributeError):
                raise _statement_error(pid, i, st) from None
            if type(rank) is not str or type(snaktype) is not str or type(kind) is not str:
                raise _statement_error(pid, i, st)
            if kind == "wikibase-entityid":
                if type(tail) is not str:
                    tail = _numeric_item_id(datavalue["value"], tail, f"claims.{pid}[{i}].mainsnak.datavalue.value")
                if tail and tail[0] == "Q" and (keep is None or rank in keep) and tail not in tails:
                    tails.add(tail)
                    append(_new(Triple, (key, pid, tail, NO_SPLIT)))


def _any_preferred(statements) -> bool:
    """Whether a statement of the list has rank ``preferred`` (malformed ones are left to the
    walk that follows, which reports them)."""
    for st in statements:
        if isinstance(st, _OBJECT) and st.get("rank") == "preferred":
            return True
    return False


def _statement_error(pid: str, i: int, statement) -> _Malformed:
    """The first problem of statement ``i`` of property ``pid`` (error path only)."""
    where = f"claims.{pid}[{i}]"
    if not isinstance(statement, _OBJECT):
        return _Malformed(where, "an object", statement)
    rank = statement.get("rank", "normal")
    if type(rank) is not str:
        return _Malformed(where + ".rank", "a string", rank)
    snak = statement.get("mainsnak", _MISSING)
    where += ".mainsnak"
    if not isinstance(snak, _OBJECT):
        return _Malformed(where, "an object", snak)
    snaktype = snak.get("snaktype", _MISSING)
    if type(snaktype) is not str:
        return _Malformed(where + ".snaktype", "a string", snaktype)
    datavalue = snak.get("datavalue", _MISSING)
    where += ".datavalue"
    if not isinstance(datavalue, _OBJECT):
        return _Malformed(where, "an object (the snak has a value)", datavalue)
    kind = datavalue.get("type", _MISSING)
    if type(kind) is not str:
        return _Malformed(where + ".type", "a string", kind)
    return _Malformed(where + ".value", "an object", datavalue.get("value", _MISSING))


def _numeric_item_id(value, id_: object, where: str) -> str | None:
    """The QID of an entity-id value without a string ``id`` (old dumps wrote only
    ``numeric-id`` and ``entity-type``), or None when it is not an item."""
    if not isinstance(value, _OBJECT):
        raise _Malformed(where, "an object", value)
    if id_ is not None:
        raise _Malformed(where + ".id", "a string", id_)
    numeric_id = value.get("numeric-id")
    if numeric_id is not None and type(numeric_id) is not int:
        raise _Malformed(where + ".numeric-id", "an integer", numeric_id)
    entity_type = value.get("entity-type")
    if entity_type is not None and type(entity_type) is not str:
        raise _Malformed(where + ".entity-type", "a string", entity_type)
    return f"Q{numeric_id}" if entity_type == "item" and numeric_id is not None else None
