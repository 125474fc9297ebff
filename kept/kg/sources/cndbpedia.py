"""Reader for the CN-DBpedia dump ``baike_triples.txt``.

One fact per line: ``subject<TAB>predicate<TAB>object``, UTF-8. Names are keys (the
KG is keyed by Baidu Baike page titles). Values may contain ``<a>text</a>`` link
markup; the tags are removed everywhere (subject, predicate and object), keeping
the inner text, and nothing else is unescaped. How a line becomes records:

============================================  =======================================
predicate                                     record
============================================  =======================================
``BaiduCARD``                                 ``Entity(subject, description=object)``
``中文名`` ``别名`` ``别称`` ``又名``           ``Entity(subject, aliases=((object, "zh"),))``
``外文名`` ``英文名``                           ``Entity(subject, aliases=((object, None),))``
in ``ctx.options.edge_predicates`` (a set)    ``Triple(subject, predicate, object)``
``BaiduTAG``                                  ``Attribute(subject, "BaiduTAG", object)``
any other, ``edge_predicates`` is None        ``Triple`` when the whole object is one
                                              ``<a>...</a>`` link, else ``Attribute``
any other, ``edge_predicates`` is a set       ``Attribute(subject, predicate, object)``
============================================  =======================================

Rows are tried top to bottom, so names and cards are never edges, while ``BaiduTAG``
becomes an edge when listed in ``edge_predicates``. An alias equal to the subject
itself is dropped (it is already the label). Every subject gets
``Entity(subject, label=subject, lang="zh")`` the first time it is seen, as does the
object of an edge; ``Relation(predicate, label=predicate)`` comes before the first
edge of each predicate. With ``ctx.options.properties`` set, edges whose predicate
is not in it are dropped (attributes, names and cards are kept).

A line without three tab-separated fields, or with a field that is empty once the
markup is removed, is a malformed line (``ctx.bad``); blank lines are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kept.kg.sources.records import Attribute, Entity, Record, Relation, Triple
from kept.kg.sources.spo import iter_spo_lines

if TYPE_CHECKING:
    from kept.kg.sources import ReadContext

CARD = "BaiduCARD"
TAG = "BaiduTAG"
#: name predicates -> language of the alias they give
ALIAS_PREDICATES: dict[str, str | None] = {
    "中文名": "zh",
    "别名": "zh",
    "别称": "zh",
    "又名": "zh",
    "外文名": None,
    "英文名": None,
}

_TAG_RE = re.compile(r"</?a>")
_WHOLE_LINK_RE = re.compile(r"<a>(?:(?!</?a>).)*</a>", re.DOTALL)

def strip_links(text: str) -> str:
    """``text`` without ``<a>``/``</a>`` tags (inner text kept) and surrounding whitespace."""
    return (_TAG_RE.sub("", text) if "<a>" in text or "</a>" in text else text).strip()


def is_whole_link(text: str) -> bool:
    """True when ``text`` (surrounding whitespace aside) is exactly one ``<a>...</a>`` link."""
    return _WHOLE_LINK_RE.fullmatch(text.strip()) is not None


def read_cndbpedia(path: Path, ctx: ReadContext) -> Iterator[Record]:
    """Stream the records of a CN-DBpedia ``baike_triples.txt`` (plain or compressed).

    path: the dump file (``.gz``/``.bz2``/``.xz`` are decompressed on the fly).
    ctx: read context; uses ``ctx.bad`` for malformed lines,
        ``ctx.options.edge_predicates`` to choose edges (see the module docstring) and
        ``ctx.options.properties`` to keep only some edge predicates.
    """
    edge_predicates = ctx.options.edge_predicates
    properties = ctx.options.properties
    seen_entities: set[str] = set()
    seen_relations: set[str] = set()
    for subject, predicate, obj, raw_object in iter_spo_lines(path, ctx, strip_links,
                                                              " (after removing <a> markup)"):
        if subject not in seen_entities:
            seen_entities.add(subject)
            yield Entity(subject, label=subject, lang="zh")

        if predicate == CARD:
            yield Entity(subject, description=obj)
            continue
        if predicate in ALIAS_PREDICATES:
            if obj != subject:
                yield Entity(subject, aliases=((obj, ALIAS_PREDICATES[predicate]),))
            continue
        if edge_predicates is not None:
            edge = predicate in edge_predicates
        else:
            edge = predicate != TAG and is_whole_link(raw_object)
        if not edge:
            yield Attribute(subject, predicate, obj)
            continue
        if properties is not None and predicate not in properties:
            continue
        if obj not in seen_entities:
            seen_entities.add(obj)
            yield Entity(obj, label=obj, lang="zh")
        if predicate not in seen_relations:
            seen_relations.add(predicate)
            yield Relation(predicate, label=predicate)
        yield Triple(subject, predicate, obj)
