"""The study's data: the T-REx sample, a clean seen/unseen split, cropped training sentences, the
WikiText-2 text of the shared base model and a compact WordPiece vocabulary (``tokenizers``).

Every function writes under ``args.out`` and reuses what is already there, so an interrupted run
continues where it stopped.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from kept.probe.splits import NameIndex, clean_split

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
WD, WDT = "http://www.wikidata.org/entity/", "http://www.wikidata.org/prop/direct/"


def log(message: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)


def make_data(args: argparse.Namespace) -> dict:
    """The T-REx sample, the seen/unseen split of its facts and the training sentences."""
    sys.path.insert(0, str(ROOT / "kg_data" / "recipes"))
    import make_trex_sample

    data = args.out / "data"
    if not (data / "sentences.jsonl.gz").exists():
        log(f"T-REx sample: first {args.per_relation} facts per relation of {args.lama}")
        if make_trex_sample.main(["--lama", str(args.lama), "--out", str(data),
                                  "--per-relation", str(args.per_relation)]) != 0:
            raise SystemExit("making the T-REx sample failed")
    with gzip.open(data / "sentences.jsonl.gz", "rt", encoding="utf-8") as f:
        sentences = [json.loads(line) for line in f]
    facts = sorted({s["fact"] for s in sentences})
    rng = np.random.default_rng(args.split_seed)
    drawn = {facts[i] for i in np.flatnonzero(rng.random(len(facts)) < args.seen_fraction)}
    # unseen = no training sentence names its subject and its object (kept.probe.splits)
    seen, moved = clean_split(sentences_by_fact(sentences), fact_names(data / "probe", sentences), drawn)
    train = [s for s in sentences if s["fact"] in seen]
    if args.crop_words >= 0:  # subject .. object plus N words either side: shorter, cheaper sequences
        train = [crop(s, args.crop_words) for s in train]
    with gzip.open(data / "train_sentences.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in train)
    (data / "seen_facts.txt").write_text("".join(f"{uuid}\n" for uuid in sorted(seen)))
    # the seen facts as N-Triples (labels kept): the store `kept probe --seen-store` splits by
    seen_triples = {(s["sub_uri"], s["predicate"], s["obj_uri"]) for s in train}
    with gzip.open(data / "trex_facts.nt.gz", "rt", encoding="utf-8") as src, \
            gzip.open(data / "seen_facts.nt.gz", "wt", encoding="utf-8") as dst:
        for line in src:
            parts = line.split(" ", 3)
            if parts[1].startswith(f"<{WDT}"):
                key = (parts[0][len(WD) + 1:-1], parts[1][len(WDT) + 1:-1], parts[2][len(WD) + 1:-1])
                if key not in seen_triples:
                    continue
            dst.write(line)
    (data / "moved_to_seen.txt").write_text("".join(f"{uuid}\n" for uuid in moved))
    log(f"split: {len(drawn)} facts drawn seen, {len(moved)} more moved to seen (a training sentence names "
        f"their subject and object), {len(facts) - len(seen)} unseen")
    return {"facts_with_sentences": len(facts), "seen_facts": len(seen), "drawn_seen": len(drawn),
            "moved_to_seen": len(moved), "sentences": len(sentences), "training_sentences": len(train)}


def read_jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def sentences_by_fact(sentences: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in sentences:
        out.setdefault(s["fact"], []).append(s["text"])
    return out


def fact_names(probe: Path, sentences: list[dict]) -> dict[str, tuple[set[str], set[str]]]:
    """fact uuid -> (subject names, object names): the probe set's labels and the evidence surface forms."""
    names: dict[str, tuple[set[str], set[str]]] = {}
    for path in sorted(probe.glob("P*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                fact = json.loads(line)
                names[fact["uuid"]] = ({fact["sub_label"]}, {fact["obj_label"]})
    for s in sentences:
        subjects, objects = names.setdefault(s["fact"], (set(), set()))
        subjects.add(s["sub_surface"])
        objects.add(s["obj_surface"])
    return names


def wiki_sentences(names: dict[str, tuple[set[str], set[str]]]) -> list[str]:
    """WikiText-2 (valid + test) split into sentences, headings dropped, and every sentence that names the
    subject and the object of a sampled fact dropped (the base model must not read a probed fact;
    the same word-bounded rule as the seen/unseen split, :class:`kept.probe.splits.NameIndex`)."""
    index = NameIndex(names)
    out, dropped = [], 0
    for name in ("valid.txt.gz", "test.txt.gz"):
        with gzip.open(SHARED / "corpus" / "en" / "wikitext-2" / name, "rt", encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("="):
                    continue
                for sent in re.split(r"(?<= \.) ", line):
                    sent = sent.replace("<unk>", "[UNK]").replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
                    if len(sent.split()) < 5:
                        continue
                    if index.mentioned(sent):
                        dropped += 1
                        continue
                    out.append(sent)
    log(f"WikiText-2: {len(out)} sentences, {dropped} dropped (they name a sampled fact's subject and object)")
    return out


def crop(sentence: dict, context_words: int) -> dict:
    """The sentence cut to its subject ... object stretch plus ``context_words`` words either side
    (character offsets shifted; the surfaces are kept whole)."""
    text = sentence["text"]
    lo = min(sentence["sub_start"], sentence["obj_start"])
    hi = max(sentence["sub_end"], sentence["obj_end"])
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    first = next(i for i, (a, b) in enumerate(words) if b > lo)
    last = max(i for i, (a, b) in enumerate(words) if a < hi)
    start = words[max(first - context_words, 0)][0]
    end = words[min(last + context_words, len(words) - 1)][1]
    out = dict(sentence, text=text[start:end])
    for key in ("sub_start", "sub_end", "obj_start", "obj_end"):
        out[key] = sentence[key] - start
    return out


def train_vocab(store_dir: Path, wiki_txt: Path, train_texts: list[str], size: int, out: Path) -> Path:
    """``out/vocab.txt``: a lowercased WordPiece vocabulary of ``size`` entries (``tokenizers``) trained on
    WikiText-2, the training sentences and every KG entity and relation label. Reused when present."""
    if (out / "vocab.txt").exists():
        return out / "vocab.txt"
    from tokenizers import BertWordPieceTokenizer

    from kept.kg.store import open_store

    store = open_store(store_dir)
    labels = [label for (label,) in store.db.execute("SELECT label FROM entities WHERE label IS NOT NULL")]
    labels += [label for (label,) in store.db.execute("SELECT label FROM relations WHERE label IS NOT NULL")]
    texts = wiki_txt.read_text(encoding="utf-8").splitlines() + list(train_texts) + labels
    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(texts, vocab_size=size, min_frequency=2,
                            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    out.mkdir(parents=True, exist_ok=True)
    tok.save_model(str(out))
    log(f"vocabulary: {tok.get_vocab_size()} entries ({len(labels)} KG labels in its training text)")
    return out / "vocab.txt"
