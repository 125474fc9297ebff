"""The record types every reader yields and the store builder consumes.

Keys are the stable names of things in their source: a Wikidata QID/PID, an IRI,
a Freebase MID, or the surface name in name-keyed KGs (K-BERT .spo, CN-DBpedia).
An entity mentioned only in a triple still gets an id; an :class:`Entity` record
adds its label, aliases and description.
"""

from __future__ import annotations

from typing import NamedTuple

# Split codes stored with every triple. ``NO_SPLIT`` means the source had no splits.
NO_SPLIT, TRAIN, VALID, TEST = 0, 1, 2, 3
SPLIT_NAMES = {TRAIN: "train", VALID: "valid", TEST: "test"}


class Entity(NamedTuple):
    """Labels of one entity. key: stable id in the source; lang: language of ``label``."""

    key: str
    label: str | None = None
    aliases: tuple[tuple[str, str | None], ...] = ()  # (alias, language)
    description: str | None = None
    lang: str | None = None


class Relation(NamedTuple):
    """Labels of one relation (predicate / property)."""

    key: str
    label: str | None = None
    aliases: tuple[tuple[str, str | None], ...] = ()
    description: str | None = None


class Triple(NamedTuple):
    """An entity-to-entity fact; split is one of NO_SPLIT/TRAIN/VALID/TEST."""

    head: str
    relation: str
    tail: str
    split: int = NO_SPLIT


class Attribute(NamedTuple):
    """A literal-valued fact about an entity (kept as text, not as a graph edge)."""

    entity: str
    name: str
    value: str


Record = Entity | Relation | Triple | Attribute
