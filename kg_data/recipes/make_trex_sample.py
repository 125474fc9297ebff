#!/usr/bin/env python
"""Make the small English KG, sentences and probe set shipped in ``kg_data/trex/``.

Input: the original LAMA T-REx data (Petroni et al. 2019; CC BY-NC 4.0), i.e. a
directory with ``relations.jsonl`` and ``TREx/P*.jsonl[.gz]`` (one fact per line:
``uuid, obj_uri, obj_label, sub_uri, sub_label, predicate_id, evidences``, each
evidence ``{sub_surface, obj_surface, masked_sentence}``).

Sample (deterministic, no randomness): every relation that has a T-REx file, in
sorted order of relation file name, and the first ``--per-relation`` facts
(lines) of each file.

Outputs (in ``--out``):

``trex_facts.nt.gz``
    N-Triples (UTF-8, gzip), lines sorted. For each fact
    ``wd:Qs wdt:Pp wd:Qo .``; one ``rdfs:label "..."@en`` per subject/object
    entity (its LAMA label) and per property (``wd:Pp``, the label from
    relations.jsonl); ``skos:altLabel "..."@en`` per entity for the evidence
    surface forms (sub_surface / obj_surface) that differ from its label, in
    order of first appearance, without repeats, at most ``--max-aliases``.
    Only the evidences used for ``sentences.jsonl.gz`` contribute aliases.
``sentences.jsonl.gz``
    One JSON object per evidence sentence, at most ``--max-evidences`` per fact
    (repeated sentences of one fact are used once): ``text`` (the masked
    sentence with its ``[MASK]`` replaced by obj_surface), ``fact`` (uuid),
    ``predicate``, ``sub_uri``, ``obj_uri``, ``sub_surface``, ``obj_surface``
    and the character offsets ``sub_start/sub_end/obj_start/obj_end`` of the
    surfaces in ``text`` (obj: where ``[MASK]`` was; sub: its first occurrence
    not overlapping the object). Evidences without exactly one ``[MASK]``, or
    whose sub_surface is not in the text, are skipped.
``probe/relations.jsonl`` and ``probe/P*.jsonl.gz``
    A LAMA-format probe set of the same sample: the original relations.jsonl
    lines of the sampled relations, and the original fact lines, byte for byte.

Gzip output is written with level 9, no file name and mtime 0 (as ``gzip -9 -n``),
so a re-run gives the same bytes with the same zlib.

Run from the repository root::

    python kg_data/recipes/make_trex_sample.py            # ../shared/data/lama -> kg_data/trex
    python kg_data/recipes/make_trex_sample.py --lama DIR --out DIR --per-relation 150
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_LAMA = REPO.parent / "shared" / "data" / "lama"
DEFAULT_OUT = REPO / "kg_data" / "trex"

WD = "http://www.wikidata.org/entity/"
WDT = "http://www.wikidata.org/prop/direct/"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
SKOS_ALT = "http://www.w3.org/2004/02/skos/core#altLabel"
MASK = "[MASK]"
_QID = re.compile(r"Q[1-9][0-9]*\Z")
_PID = re.compile(r"P[1-9][0-9]*\Z")

_ECHAR = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def nt_literal(text: str, lang: str = "en") -> str:
    """An N-Triples language-tagged literal, escaped (ECHAR; other controls as \\uXXXX)."""
    out = []
    for ch in text:
        if ch in _ECHAR:
            out.append(_ECHAR[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"@' + lang


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _write_gz(path: Path, data: bytes) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
        f.write(data)


def relation_files(lama: Path) -> dict[str, Path]:
    """relation id -> its T-REx file (a plain file wins over a .gz of the same relation)."""
    files: dict[str, Path] = {}
    for p in sorted((lama / "TREx").glob("P*.jsonl*")):
        name = p.name
        if not (name.endswith(".jsonl") or name.endswith(".jsonl.gz")):
            continue
        rel = name.split(".", 1)[0]
        if rel not in files or p.suffix != ".gz":
            files[rel] = p
    if not files:
        raise SystemExit(f"no TREx/P*.jsonl[.gz] files under {lama}")
    return dict(sorted(files.items(), key=lambda kv: kv[1].name.removesuffix(".gz")))


def _sub_span(text: str, sub: str, obj_start: int, obj_end: int) -> int:
    """First start of ``sub`` in ``text`` that does not overlap [obj_start, obj_end); -1 if none."""
    i = text.find(sub)
    while i >= 0 and i < obj_end and i + len(sub) > obj_start:
        i = text.find(sub, i + 1)
    return i


def make_sample(lama: Path, out: Path, per_relation: int = 150, max_evidences: int = 3,
                max_aliases: int = 5) -> dict:
    """Write the sample into ``out`` (replacing the files it makes); returns the counts."""
    rel_lines: dict[str, bytes] = {}
    rel_labels: dict[str, str] = {}
    with open(lama / "relations.jsonl", "rb") as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            rel_lines[d["relation"]] = line if line.endswith(b"\n") else line + b"\n"
            rel_labels[d["relation"]] = d["label"]

    files = relation_files(lama)
    missing = [r for r in files if r not in rel_labels]
    if missing:
        raise SystemExit(f"relations without a line in relations.jsonl: {missing}")

    facts: list[tuple[str, str, str]] = []
    seen_facts: set[tuple[str, str, str]] = set()
    labels: dict[str, str] = {}
    aliases: dict[str, list[str]] = {}
    sentences: list[bytes] = []
    probe: dict[str, bytes] = {}
    counts = {"relations": 0, "facts": 0, "duplicate_facts": 0, "evidences_seen": 0, "sentences": 0,
              "skipped_repeated_sentence": 0, "skipped_mask_count": 0, "skipped_sub_not_found": 0}

    for rel, path in files.items():
        raw = []
        with _open_text(path) as f:
            for line in f:
                if len(raw) >= per_relation:
                    break
                if line.strip():
                    raw.append(line if line.endswith(b"\n") else line + b"\n")
        probe[rel] = b"".join(raw)
        counts["relations"] += 1
        for line in raw:
            d = json.loads(line)
            s, p, o = d["sub_uri"], d["predicate_id"], d["obj_uri"]
            if p != rel or not _QID.match(s) or not _QID.match(o) or not _PID.match(p):
                raise SystemExit(f"{path.name}: unexpected fact {d['uuid']}: {s} {p} {o}")
            if (s, p, o) in seen_facts:
                counts["duplicate_facts"] += 1
            else:
                seen_facts.add((s, p, o))
                facts.append((s, p, o))
            counts["facts"] += 1
            labels.setdefault(s, d["sub_label"])
            labels.setdefault(o, d["obj_label"])
            used: set[str] = set()
            n_used = 0
            for ev in d["evidences"]:
                if n_used >= max_evidences:
                    break
                counts["evidences_seen"] += 1
                masked, sub, obj = ev["masked_sentence"], ev["sub_surface"], ev["obj_surface"]
                if masked.count(MASK) != 1:
                    counts["skipped_mask_count"] += 1
                    continue
                obj_start = masked.index(MASK)
                text = masked[:obj_start] + obj + masked[obj_start + len(MASK):]
                if text in used:
                    counts["skipped_repeated_sentence"] += 1
                    continue
                obj_end = obj_start + len(obj)
                sub_start = _sub_span(text, sub, obj_start, obj_end) if sub else -1
                if sub_start < 0 or not obj:
                    counts["skipped_sub_not_found"] += 1
                    continue
                used.add(text)
                n_used += 1
                rec = {"text": text, "fact": d["uuid"], "predicate": p, "sub_uri": s, "obj_uri": o,
                       "sub_surface": sub, "obj_surface": obj, "sub_start": sub_start,
                       "sub_end": sub_start + len(sub), "obj_start": obj_start, "obj_end": obj_end}
                sentences.append(json.dumps(rec, ensure_ascii=False).encode("utf-8") + b"\n")
                for ent, surface in ((s, sub), (o, obj)):
                    surface = surface.strip()
                    names = aliases.setdefault(ent, [])
                    if surface and surface != labels[ent] and surface not in names and len(names) < max_aliases:
                        names.append(surface)
    counts["unique_facts"] = len(facts)
    counts["sentences"] = len(sentences)

    lines = [f"<{WD}{s}> <{WDT}{p}> <{WD}{o}> ." for s, p, o in facts]
    for ent, label in labels.items():
        lines.append(f"<{WD}{ent}> <{RDFS_LABEL}> {nt_literal(label)} .")
    for rel in files:
        lines.append(f"<{WD}{rel}> <{RDFS_LABEL}> {nt_literal(rel_labels[rel])} .")
    n_alias = 0
    for ent, names in aliases.items():
        for name in names:
            lines.append(f"<{WD}{ent}> <{SKOS_ALT}> {nt_literal(name)} .")
            n_alias += 1
    lines.sort()
    nt = ("\n".join(lines) + "\n").encode("utf-8")
    counts.update(entities=len(labels), entity_labels=len(labels), property_labels=len(files),
                  aliases=n_alias, entities_with_aliases=sum(1 for v in aliases.values() if v),
                  nt_lines=len(lines))

    out.mkdir(parents=True, exist_ok=True)
    probe_dir = out / "probe"
    if probe_dir.exists():
        shutil.rmtree(probe_dir)
    probe_dir.mkdir()
    _write_gz(out / "trex_facts.nt.gz", nt)
    _write_gz(out / "sentences.jsonl.gz", b"".join(sentences))
    with open(probe_dir / "relations.jsonl", "wb") as f:
        f.write(b"".join(rel_lines[r] for r in rel_lines if r in files))
    for rel, data in probe.items():
        _write_gz(probe_dir / f"{rel}.jsonl.gz", data)
    _check_nt(nt, len(lines))
    return counts


def _check_nt(nt: bytes, n_lines: int) -> None:
    """Parse the N-Triples with rdflib (the reference parser): every line must be one triple."""
    try:
        import rdflib
    except ImportError:  # pragma: no cover - rdflib is a dependency of kept
        return
    g = rdflib.Graph()
    g.parse(io.BytesIO(nt), format="nt")
    if len(g) != n_lines:
        raise SystemExit(f"rdflib parsed {len(g)} triples from {n_lines} N-Triples lines")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lama", type=Path, default=DEFAULT_LAMA,
                    help=f"LAMA data directory with relations.jsonl and TREx/ (default: {DEFAULT_LAMA})")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default: {DEFAULT_OUT})")
    ap.add_argument("--per-relation", type=int, default=150, help="first N facts of each relation (default: 150)")
    ap.add_argument("--max-evidences", type=int, default=3, help="sentences per fact at most (default: 3)")
    ap.add_argument("--max-aliases", type=int, default=5, help="aliases per entity at most (default: 5)")
    args = ap.parse_args(argv)
    if not (args.lama / "relations.jsonl").exists():
        print(f"error: {args.lama}/relations.jsonl not found; give --lama", file=sys.stderr)
        return 2
    counts = make_sample(args.lama, args.out, args.per_relation, args.max_evidences, args.max_aliases)
    width = max(map(len, counts))
    for k, v in counts.items():
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
