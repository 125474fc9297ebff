"""Reader for K-BERT ``.spo`` knowledge graphs (``Medical.spo``, ``HowNet.spo``, ``CnDbpedia.spo``).

One fact per line: ``subject<TAB>predicate<TAB>object``, UTF-8. The KG is keyed by
surface names, so every name is its own key and its own label:

* ``Entity(name, label=name)`` the first time a subject or object appears,
* ``Relation(predicate, label=predicate)`` the first time a predicate appears,
* ``Triple(subject, predicate, object)`` for every line.

Fields are stripped of surrounding whitespace; blank lines are skipped. A line that
does not have exactly three non-empty tab-separated fields is a malformed line
(``ctx.bad``). With ``ctx.options.properties`` set, lines whose predicate is not in
it are dropped, and their names are not announced by them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kept.kg.sources.records import Entity, Record, Relation, Triple

if TYPE_CHECKING:
    from kept.kg.sources import ReadContext

_FIELDS = ("subject", "predicate", "object")


def _problem(fields: list[str]) -> str | None:
    """Why a split line is not a fact, or None when it is one."""
    if len(fields) != 3:
        return f"expected 3 tab-separated fields (subject, predicate, object), got {len(fields)}"
    for name, value in zip(_FIELDS, fields):
        if not value:
            return f"empty {name} field"
    return None


def read_spo(path: Path, ctx: ReadContext) -> Iterator[Record]:
    """Stream the records of one ``.spo`` file (plain or compressed).

    path: the ``.spo`` file (``.gz``/``.bz2``/``.xz`` are decompressed on the fly).
    ctx: read context; uses ``ctx.bad`` for malformed lines and ``ctx.options.properties``
        to keep only some predicates.
    """
    properties = ctx.options.properties
    seen_entities: set[str] = set()
    seen_relations: set[str] = set()
    with ctx.open(path) as f:
        for line in f.text_lines(ctx.bad):
            if not line.strip():
                continue
            fields = [field.strip() for field in line.split("\t")]
            problem = _problem(fields)
            if problem is not None:
                ctx.bad.report(path, f.lineno, problem)
                continue
            subject, predicate, obj = fields
            if properties is not None and predicate not in properties:
                continue
            for name in (subject, obj):
                if name not in seen_entities:
                    seen_entities.add(name)
                    yield Entity(name, label=name, lang=None)
            if predicate not in seen_relations:
                seen_relations.add(predicate)
                yield Relation(predicate, label=predicate)
            yield Triple(subject, predicate, obj)
