"""Make kg_data/zh_probe/: a small Chinese LAMA-format cloze probe set from the K-BERT Chinese KGs.

    /work/main/.venv/bin/python kg_data/recipes/make_zh_probe.py
    # = --medical kg_data/kbert/Medical.spo --hownet kg_data/kbert/HowNet.spo.gz --out kg_data/zh_probe \
    #   --per-object-medical 100 --hownet-objects 40 --per-object-hownet 10

Standard library only, no randomness (every choice is by an md5 order), so re-running gives the same
bytes. Two relations, one template each, written in Chinese (``relations.jsonl``, LAMA layout):

* ``medical_category`` (Medical KG, predicate ``类别``): ``[X]是一种[Y]。`` -- the object is one of
  the five categories 疾病 症状 部位 治疗 检查 (two characters: multi mode only). At most
  ``--per-object-medical`` facts per category (the KG has 7,392 diseases but 308 examinations),
  so the majority-class baseline is near 1/5 rather than 53 %.
* ``hownet_sememe`` (HowNet, predicate ``义原``): ``[X]的意思和[Y]有关。`` -- the object is a
  one-character sememe (人, 车, 树, 鱼, ...: single mode over the characters, and multi mode).
  The ``--hownet-objects`` sememes with the most usable facts (ties by character), ``--per-object-hownet``
  facts each; one fact per subject (the first one-character sememe of the word in file order). HowNet words often have several
  sememes: ``kept probe --filter-objects`` leaves the others out of the ranking.

Facts kept: subject and object all CJK characters (U+4E00..U+9FFF), subject 2 to 8 characters,
object not inside the subject (LAMA-UHN's string filter: "头痛" is not asked whether it is about "头").
Each line is ``{"uuid", "sub_label", "obj_label", "sub_uri", "obj_uri", "predicate_id"}``; the KG is
keyed by names (``kept kg build`` of a .spo file), so ``sub_uri`` / ``obj_uri`` are the names and a
probe with ``--kg`` finds the subjects by key. ``uuid`` is the md5 of ``subject<TAB>predicate<TAB>object``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u4e00-\u9fff]+")
RELATIONS = [
    {"relation": "medical_category", "template": "[X]是一种[Y]。", "label": "类别",
     "description": "Medical KG (K-BERT): the category of a medical term (疾病, 症状, 部位, 治疗, 检查)", "type": "N-1"},
    {"relation": "hownet_sememe", "template": "[X]的意思和[Y]有关。", "label": "义原",
     "description": "HowNet (K-BERT): a one-character sememe of a word", "type": "N-M"},
]


def read_spo(path: Path) -> list[tuple[str, str, str]]:
    """``(subject, predicate, object)`` of a ``.spo`` file (``.gz`` read as gzip); SystemExit naming
    the file and line of a row without three tab-separated fields."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 3:
                raise SystemExit(f"{path}:{lineno}: expected subject<TAB>predicate<TAB>object")
            rows.append(tuple(field.strip() for field in fields))
    return rows


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def usable(subject: str, obj: str, max_object: int) -> bool:
    """CJK only, subject 2..8 characters, object 1..max_object characters and not inside the subject."""
    return (bool(CJK.fullmatch(subject)) and bool(CJK.fullmatch(obj)) and 2 <= len(subject) <= 8
            and 1 <= len(obj) <= max_object and obj not in subject)


def sample(facts: list[tuple[str, str, str]], per_object: int, objects: int | None = None) -> list[tuple[str, str, str]]:
    """At most ``per_object`` facts per object, taken in md5 order of the fact, of the ``objects`` objects with
    the most facts (ties by name; None: all objects); returned in md5 order."""
    counts: dict[str, int] = defaultdict(int)
    for fact in facts:
        counts[fact[2]] += 1
    top = set(sorted(counts, key=lambda o: (-counts[o], o))[:objects] if objects else counts)
    by_object: dict[str, list] = defaultdict(list)
    for fact in sorted(facts, key=lambda f: _md5("\t".join(f))):
        if fact[2] in top and len(by_object[fact[2]]) < per_object:
            by_object[fact[2]].append(fact)
    return sorted((f for group in by_object.values() for f in group), key=lambda f: _md5("\t".join(f)))


def make(medical: Path, hownet: Path, out: Path, per_object_medical: int = 100, hownet_objects: int = 40,
         per_object_hownet: int = 10) -> dict[str, int]:
    """Write the probe set to ``out`` (via a temporary directory renamed at the end); returns facts per relation."""
    med = [f for f in read_spo(medical) if f[1] == "类别" and usable(f[0], f[2], 4)]
    seen: set[str] = set()
    how = []
    for fact in read_spo(hownet):                        # one fact per subject: its first one-character sememe
        if fact[1] == "义原" and usable(fact[0], fact[2], 1) and fact[0] not in seen:
            seen.add(fact[0])
            how.append(fact)
    chosen = {"medical_category": sample(med, per_object_medical, None),
              "hownet_sememe": sample(how, per_object_hownet, hownet_objects)}
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for old in tmp.iterdir():
        old.unlink()
    with open(tmp / "relations.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in RELATIONS)
    for relation, facts in chosen.items():
        with open(tmp / f"{relation}.jsonl", "w", encoding="utf-8") as f:
            for s, p, o in facts:
                f.write(json.dumps({"uuid": _md5(f"{s}\t{p}\t{o}"), "sub_label": s, "obj_label": o, "sub_uri": s,
                                    "obj_uri": o, "predicate_id": p}, ensure_ascii=False) + "\n")
    if out.exists():
        for old in out.iterdir():
            old.unlink()
        out.rmdir()
    os.replace(tmp, out)
    return {relation: len(facts) for relation, facts in chosen.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--medical", type=Path, default=ROOT / "kg_data" / "kbert" / "Medical.spo")
    p.add_argument("--hownet", type=Path, default=ROOT / "kg_data" / "kbert" / "HowNet.spo.gz")
    p.add_argument("--out", type=Path, default=ROOT / "kg_data" / "zh_probe")
    p.add_argument("--per-object-medical", type=int, default=100, help="facts per category (default 100)")
    p.add_argument("--hownet-objects", type=int, default=40, help="most frequent sememes kept (default 40)")
    p.add_argument("--per-object-hownet", type=int, default=10, help="facts per sememe (default 10)")
    args = p.parse_args(argv)
    counts = make(args.medical, args.hownet, args.out, args.per_object_medical, args.hownet_objects,
                  args.per_object_hownet)
    for relation, n in counts.items():
        print(f"{relation:18} {n:5d} facts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
