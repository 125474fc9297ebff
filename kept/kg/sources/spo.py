"""Reader for K-BERT ``.spo`` knowledge graphs (``Medical.spo``, ``HowNet.spo``, ``CnDbpedia.spo``).

One fact per line: ``subject<TAB>predicate<TAB>object``, UTF-8. The KG is keyed by
surface names, so every name is its own key and its own label:

* ``Entity(name, label=name)`` the first time a subject or object appears,
* ``Relation(predicate, label=predicate)`` the first time a predicate appears,
* ``Triple(subject, predicate, object)`` for every line.

Fields are stripped of surrounding whitespace; blank lines are skipped; a byte order
mark at the start of the file is dropped. A line that holds a NUL byte, or does not
have exactly three non-empty tab-separated fields, is a malformed line
(``ctx.bad``). With ``ctx.options.properties`` set, lines whose predicate is not in
it are dropped, and their names are not announced by them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kept.kg.sources.records import Entity, Record, Relation, Triple

if TYPE_CHECKING:
    from kept.kg.sources import ReadContext

_FIELDS = ("subject", "predicate", "object")


def iter_spo_lines(path: Path, ctx: ReadContext, clean: Callable[[str], str] = str.strip,
                   cleaned: str = "") -> Iterator[tuple[str, str, str, str]]:
    """``(subject, predicate, object, raw object)`` of each ``s<TAB>p<TAB>o`` line.

    Blank lines are skipped; a line without three fields, or with a field that is
    empty after ``clean`` (default: strip whitespace), goes to ``ctx.bad``.
    cleaned: words added to the empty-field message (e.g. "after removing <a> markup").
    Shared by the K-BERT .spo and CN-DBpedia readers.
    """
    with ctx.open(path) as f:
        for line in f.text_lines(ctx.bad):
            if not line.strip():
                continue
            if "\x00" in line:
                ctx.bad.report(path, f.lineno, f"NUL byte at character {line.index(chr(0))} of the line "
                                               "(names may not contain NUL)")
                continue
            raw = line.split("\t")
            if len(raw) != 3:
                ctx.bad.report(path, f.lineno,
                               f"expected 3 tab-separated fields (subject, predicate, object), got {len(raw)}")
                continue
            fields = [clean(field) for field in raw]
            empty = next((name for name, value in zip(_FIELDS, fields) if not value), None)
            if empty is not None:
                ctx.bad.report(path, f.lineno, f"empty {empty} field{cleaned}")
                continue
            yield fields[0], fields[1], fields[2], raw[2]


def read_spo(path: Path, ctx: ReadContext) -> Iterator[Record]:
    """Stream the records of one ``.spo`` file (plain or compressed).

    path: the ``.spo`` file (``.gz``/``.bz2``/``.xz`` are decompressed on the fly).
    ctx: read context; uses ``ctx.bad`` for malformed lines and ``ctx.options.properties``
        to keep only some predicates.
    """
    properties = ctx.options.properties
    seen_entities: set[str] = set()
    seen_relations: set[str] = set()
    for subject, predicate, obj, _ in iter_spo_lines(path, ctx):
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
