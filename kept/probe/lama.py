"""Reading LAMA-format probe sets.

A probe directory holds one ``<relation>.jsonl`` (or ``.jsonl.gz``) file per relation
and, in the directory or its parent, a ``relations.jsonl`` with one template per
relation. This is the layout of LAMA (Petroni et al., 2019):

* ``relations.jsonl``: ``{"relation": "P19", "template": "[X] was born in [Y] .",
  "label": "place of birth", "type": "N-1", ...}`` per line;
* ``TREx/P19.jsonl``: ``{"sub_label", "obj_label", "sub_uri", "obj_uri", "uuid",
  "predicate_id", "evidences": [{"sub_surface", "obj_surface", "masked_sentence"}]}``;
* ``Squad/test.jsonl``: ``{"sub_label", "obj_label", "id", "masked_sentences": [...]}``
  (no template: probe it with masked sentences);
* pararel's ``TREx_lms_vocab`` files: ``{"sub_label", "obj_label", "uuid"}`` only.

Every problem is reported as a :class:`ProbeDataError` naming the file and line.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class ProbeDataError(ValueError):
    """A probe set (or an option naming part of one) is malformed; the message names file and line."""


@dataclass(frozen=True)
class Relation:
    """One relation of a probe set.

    relation: its id, the stem of its facts file (``"P19"``, ``"test"`` for Squad).
    template: cloze template with ``[X]`` (subject) and ``[Y]`` (object), or None when
        ``relations.jsonl`` has none (then only masked-sentence probing works).
    label: human-readable name (default ""). type: LAMA's cardinality ("1-1", "N-1", "N-M"; default "").
    path: the facts file.
    """

    relation: str
    template: str | None
    label: str = ""
    type: str = ""
    path: Path | None = None


@dataclass(frozen=True)
class Fact:
    """One (subject, relation, object) fact to probe.

    sub_label / obj_label: surface names of subject and object.
    sub_uri / obj_uri: KG keys (Wikidata QIDs in LAMA T-REx), None when the file has none.
    masked_sentences: evidence sentences with the object replaced by ``[MASK]``.
    sub_surfaces: for each masked sentence, how the subject is written in it (None: unknown).
    source: ``"FILE:LINE"`` of the fact, for messages.
    """

    relation: str
    sub_label: str
    obj_label: str
    sub_uri: str | None = None
    obj_uri: str | None = None
    masked_sentences: tuple[str, ...] = ()
    sub_surfaces: tuple[str | None, ...] = ()
    source: str = ""


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.name.endswith(".gz") else open(path, encoding="utf-8")


def _json_lines(path: Path):
    """(line number, JSON object) of each non-blank line; ProbeDataError on invalid JSON or a non-object."""
    try:
        with _open_text(path) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ProbeDataError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
                if not isinstance(record, dict):
                    raise ProbeDataError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
                yield lineno, record
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ProbeDataError(f"{path}: cannot read ({exc})") from None


def _string(record: dict, name: str, where: str, required: bool = True) -> str | None:
    value = record.get(name)
    if value is None:
        if required:
            raise ProbeDataError(f"{where}: missing {name!r}")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ProbeDataError(f"{where}: {name!r} must be a non-empty string, got {value!r}")
    return value


def load_relations(path: str | Path) -> dict[str, Relation]:
    """Relations of a LAMA ``relations.jsonl``: relation id -> :class:`Relation` (file order).

    A template must contain ``[X]`` once and ``[Y]`` once.
    """
    path = Path(path)
    out: dict[str, Relation] = {}
    for lineno, record in _json_lines(path):
        where = f"{path}:{lineno}"
        rel = _string(record, "relation", where)
        template = _string(record, "template", where, required=False)
        if template is not None and (template.count("[X]") != 1 or template.count("[Y]") != 1):
            raise ProbeDataError(f"{where}: template {template!r} must contain [X] and [Y] exactly once each")
        out[rel] = Relation(rel, template, record.get("label") or "", record.get("type") or "")
    return out


def read_facts(path: str | Path, relation: str | None = None) -> list[Fact]:
    """All facts of one relation file (``.jsonl`` or ``.jsonl.gz``), in file order.

    relation: the relation id given to the facts (default: the file stem, ``P19`` for ``P19.jsonl.gz``).
    Masked sentences come from ``masked_sentences`` or else from ``evidences[*].masked_sentence``.
    """
    path = Path(path)
    relation = relation or relation_id_of(path)
    facts = []
    for lineno, record in _json_lines(path):
        where = f"{path}:{lineno}"
        sub_label = _string(record, "sub_label", where)
        obj_label = _string(record, "obj_label", where)
        sentences: list[str] = []
        surfaces: list[str | None] = []
        if "masked_sentences" in record:
            value = record["masked_sentences"]
            if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                raise ProbeDataError(f"{where}: 'masked_sentences' must be a list of strings")
            sentences, surfaces = list(value), [None] * len(value)
        elif "evidences" in record:
            evidences = record["evidences"]
            if not isinstance(evidences, list):
                raise ProbeDataError(f"{where}: 'evidences' must be a list")
            for i, evidence in enumerate(evidences):
                if not isinstance(evidence, dict) or not isinstance(evidence.get("masked_sentence"), str):
                    raise ProbeDataError(f"{where}: evidences[{i}] has no string 'masked_sentence'")
                sentences.append(evidence["masked_sentence"])
                surface = evidence.get("sub_surface")
                surfaces.append(surface if isinstance(surface, str) and surface else None)
        facts.append(Fact(relation, sub_label, obj_label, _string(record, "sub_uri", where, required=False),
                          _string(record, "obj_uri", where, required=False), tuple(sentences), tuple(surfaces),
                          where))
    return facts


def relation_id_of(path: Path) -> str:
    """``P19`` for ``P19.jsonl`` and ``P19.jsonl.gz``."""
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def find_relations_file(directory: Path) -> Path | None:
    """``relations.jsonl`` in ``directory`` or its parent (LAMA keeps it next to ``TREx/``), else None."""
    for candidate in (directory / "relations.jsonl", directory.parent / "relations.jsonl"):
        if candidate.is_file():
            return candidate
    return None


def load_probe_set(directory: str | Path, relations: Sequence[str] | None = None,
                   relations_file: str | Path | None = None) -> list[tuple[Relation, list[Fact]]]:
    """The relations of a probe directory with all their facts.

    directory: holds ``<relation>.jsonl[.gz]`` files (``relations.jsonl`` itself is not a relation).
    relations: relation ids to load, in that order (default: every file, in the order of
        ``relations.jsonl`` and then by name). An id with no file is an error.
    relations_file: the templates file (default: :func:`find_relations_file`; none found means
        no templates).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no probe directory at {directory}")
    files: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.name == "relations.jsonl" or not path.name.endswith((".jsonl", ".jsonl.gz")):
            continue
        files.setdefault(relation_id_of(path), path)  # P19.jsonl sorts before P19.jsonl.gz: plain wins
    if relations_file is not None and not Path(relations_file).is_file():
        raise FileNotFoundError(f"no relations file at {relations_file}")
    templates_path = Path(relations_file) if relations_file is not None else find_relations_file(directory)
    templates = load_relations(templates_path) if templates_path is not None else {}
    if relations is None:
        if not files:
            subdirs = ", ".join(p.name + "/" for p in sorted(directory.iterdir()) if p.is_dir())
            hint = f" (its subdirectories: {subdirs}; LAMA keeps relation files there)" if subdirs else ""
            raise ProbeDataError(f"{directory}: no relation files (*.jsonl, *.jsonl.gz){hint}")
        order = [r for r in templates if r in files] + sorted(r for r in files if r not in templates)
    else:
        missing = [r for r in relations if r not in files]
        if missing:
            have = ", ".join(sorted(files)) or "none"
            raise ProbeDataError(f"{directory}: no facts file for relation(s) {', '.join(missing)} "
                                 f"(expected {missing[0]}.jsonl or {missing[0]}.jsonl.gz; available: {have})")
        order = list(dict.fromkeys(relations))
    out = []
    for rel in order:
        known = templates.get(rel)
        relation = Relation(rel, known.template if known else None, known.label if known else "",
                            known.type if known else "", files[rel])
        out.append((relation, read_facts(files[rel], rel)))
    return out


def read_common_vocab(path: str | Path) -> list[str]:
    """Tokens of a common-vocabulary file (LAMA's ``common_vocab_*.txt``: one token per line)."""
    path = Path(path)
    with _open_text(path) as f:
        tokens = [line.strip() for line in f if line.strip()]
    if not tokens:
        raise ProbeDataError(f"{path}: common vocabulary file is empty")
    return tokens
