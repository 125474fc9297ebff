#!/usr/bin/env python
"""Data for the knowledge-study regime search: T-REx sample, seen/unseen split, KG store, a compact
WordPiece vocabulary, the linked training corpus and a WikiText-2 corpus for a shared base model.

    PYTHONPATH=. python experiments/study/prepare.py --out runs/study/d30 --per-relation 30 --vocab-size 4000

Writes under OUT:
  data/             make_trex_sample output + train_sentences / seen_facts (as compare_methods/run.py)
  store/, seen_store/  KG store of all sampled facts, of the seen facts (no TransE: only kbert/mlm here)
  vocab/vocab.txt   WordPiece vocabulary (``tokenizers``) trained on WikiText-2 + the training
                    sentences + every KG label (so branches and candidate objects tokenise well)
  corpus/           the linked training corpus (compact vocabulary)
  wiki/             WikiText-2 (valid + test) split into sentences, lines mentioning both the subject
                    and the object label of any sampled fact dropped, as a linked corpus without KG
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def compare_data():
    """experiments/compare_methods/study_data.py: the study's data functions (one copy of each)."""
    spec = importlib.util.spec_from_file_location("compare_data", ROOT / "experiments" / "compare_methods" / "study_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    d = compare_data()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--lama", type=Path, default=d.SHARED / "lama")
    p.add_argument("--per-relation", type=int, default=30)
    p.add_argument("--seen-fraction", type=float, default=0.8)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--vocab-size", type=int, default=4000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--crop-words", type=int, default=-1,
                   help="cut training sentences to subject..object plus N words either side (-1: whole sentences)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    d.log(f"data: {d.make_data(args)}")               # the clean split; cropped training sentences

    from kept.data.build import CorpusOptions, build_linked_corpus
    from kept.kg.build import BuildOptions, build_store
    from kept.kg.sources import ReaderOptions

    for name, src in (("store", "trex_facts.nt.gz"), ("seen_store", "seen_facts.nt.gz")):
        if not (args.out / name / "meta.json").exists():
            build_store([(args.out / "data" / src, None)], args.out / name,
                        BuildOptions(reader=ReaderOptions(languages=("en",)), progress=False))
    sample = d.read_jsonl(args.out / "data" / "sentences.jsonl.gz")
    train = d.read_jsonl(args.out / "data" / "train_sentences.jsonl.gz")
    wiki = args.out / "wiki_text" / "wiki.txt"
    if not wiki.exists():
        wiki.parent.mkdir(parents=True, exist_ok=True)
        wiki.write_text("\n".join(d.wiki_sentences(d.fact_names(args.out / "data" / "probe", sample))) + "\n",
                        encoding="utf-8")
    vocab = d.train_vocab(args.out / "store", wiki, [s["text"] for s in train], args.vocab_size, args.out / "vocab")
    build_linked_corpus(args.out / "data" / "train_sentences.jsonl.gz", args.out / "corpus", vocab,
                        args.out / "store", CorpusOptions(lang="en"), workers=args.workers, progress=False)
    build_linked_corpus(wiki, args.out / "wiki", vocab, None, CorpusOptions(lang="en", phrases=None),
                        workers=args.workers, progress=False)
    d.log("training and WikiText-2 corpora built")
    return 0


if __name__ == "__main__":
    sys.exit(main())
