"""Streaming readers for KG dumps. Each format is one module with one reader:

``reader(path, ctx) -> Iterator[Record | list[Record]]`` where ``ctx``
(:class:`ReadContext`) carries the reader options, the bad-line budget and the
open-file hook the builder uses for its progress bar. A reader may yield a list
of records at a time (the Wikidata reader yields one list per entity), which
saves a generator step per record; :func:`read` flattens them for users. Readers never hold a whole dump in memory
(rdflib's Turtle and RDF/XML parsers are the documented exception).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kept.kg.sources.errors import BadLines, SourceError
from kept.kg.sources.inputs import InputFile, strip_compression
from kept.kg.sources.records import Record

#: format name -> "module:function" of its reader
FORMATS: dict[str, str] = {
    "wikidata-json": "kept.kg.sources.wikidata:read_wikidata_json",
    "ntriples": "kept.kg.sources.rdf:read_ntriples",
    "turtle": "kept.kg.sources.rdf:read_turtle",
    "rdfxml": "kept.kg.sources.rdf:read_rdfxml",
    "cndbpedia": "kept.kg.sources.cndbpedia:read_cndbpedia",
    "spo": "kept.kg.sources.spo:read_spo",
    "openke": "kept.kg.sources.openke:read_openke",
}

_SUFFIXES = {
    ".json": "wikidata-json",
    ".nt": "ntriples",
    ".ttl": "turtle",
    ".rdf": "rdfxml",
    ".owl": "rdfxml",
    ".xml": "rdfxml",
    ".spo": "spo",
}


@dataclass(frozen=True)
class ReaderOptions:
    """Options shared by the readers; each reader uses the ones that apply to it.

    languages: label/alias languages, most preferred first (default ``("en",)``).
        RDF literals without a language tag are always accepted.
    ranks: Wikidata statement ranks to keep: ``"non-deprecated"`` (default:
        preferred and normal), ``"truthy"`` (per property, the best rank present,
        as in Wikidata's truthy dumps) or ``"all"``.
    properties: keep only triples whose relation key is in this set (None: all).
    edge_predicates: CN-DBpedia predicates whose objects become entity edges;
        None (default) makes an edge only where the whole object is one ``<a>``
        link, and every other predicate an attribute.
    ntriples_engine: ``"fast"`` (default, line-oriented) or ``"rdflib"`` (reference).
    """

    languages: tuple[str, ...] = ("en",)
    ranks: str = "non-deprecated"
    properties: frozenset[str] | None = None
    edge_predicates: frozenset[str] | None = None
    ntriples_engine: str = "fast"


@dataclass
class ReadContext:
    """What a reader gets besides its path."""

    options: ReaderOptions = field(default_factory=ReaderOptions)
    bad: BadLines = field(default_factory=BadLines)
    on_open: Callable[[InputFile], None] | None = None

    def open(self, path: str | Path) -> InputFile:
        """Open ``path`` (decompressing as needed) and announce it for progress."""
        f = InputFile(path)
        if self.on_open is not None:
            self.on_open(f)
        return f


def guess_format(path: str | Path) -> str:
    """Format name from a file name (compression suffixes ignored); OpenKE for directories."""
    p = Path(path)
    if p.is_dir():
        if (p / "entity2id.txt").exists():
            return "openke"
        raise SourceError(p, None, "a directory, but not an OpenKE benchmark (no entity2id.txt); give --format")
    name = strip_compression(p).lower()
    if "baike_triples" in name or "cndbpedia" in name:
        return "cndbpedia"
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise SourceError(p, None, f"cannot guess the format from the file name; give --format ({', '.join(FORMATS)})")


def get_reader(fmt: str) -> Callable[[Path, ReadContext], Iterator[Record | list[Record]]]:
    """The reader function for a format name."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known formats: {', '.join(FORMATS)}")
    module, func = FORMATS[fmt].split(":")
    return getattr(importlib.import_module(module), func)


def read(path: str | Path, fmt: str | None = None, ctx: ReadContext | None = None) -> Iterator[Record]:
    """Stream the records of one input, one at a time; the format is guessed when not given."""
    ctx = ctx or ReadContext()
    for item in get_reader(fmt or guess_format(path))(Path(path), ctx):
        if type(item) is list:
            yield from item
        else:
            yield item
