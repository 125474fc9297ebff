"""K-BERT sentence trees: kept's batched builder vs the published per-sentence loops, same inputs.

    .venv/bin/python bench/kbert_tree.py [--sentences 1024] [--max-length 128] [--kg HowNet.spo.gz]

Reads the first ``--sentences`` book reviews (``../shared/data/corpus/zh/book_review/dev.tsv.gz``),
builds the HowNet store, segments every review once with jieba (the store's subjects as user
words; not timed: both sides take the same words), then times, interleaved, best of 3:

  * reference: K-BERT's ``add_knowledge_with_vm`` as published (characters to ids by dict
    lookup, then :func:`kept.fusion.kbert.reference.reference_tree` per sentence, per word,
    per token: tree, positions, ``np.zeros`` visible matrix filled row by row, cut/pad to
    max_length), then stacked into batch tensors;
  * kept: :class:`kept.fusion.kbert.tree.SentenceTreeBuilder` on the same words (as
    LinkedExamples), one call for the whole batch, padded to max_length.

Both use the same seeded branch choice; the outputs are checked equal (ids, soft positions,
visible matrix) before timing. Writes ``bench/results/kbert_tree.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def reference_batch(split_sent_batch: list[list[str]], lookup_table: dict[str, list[str]], vocab: dict[str, int],
                    special_tags: set[str], max_entities: int, max_length: int) -> tuple[list, list, list]:
    """``add_knowledge_with_vm`` as published (words already segmented): per sentence, characters
    to ids by dict lookup (a special tag is one token), then the published tree
    (:func:`kept.fusion.kbert.reference.reference_tree`). Branch order: ``lookup_table``'s lists."""
    from kept.fusion.kbert.reference import reference_tree

    unk = vocab["[UNK]"]
    know_sent_batch, position_batch, visible_matrix_batch = [], [], []
    for split_sent in split_sent_batch:
        words = [[vocab[t]] if t in special_tags else [vocab.get(c, unk) for c in t] for t in split_sent]
        branches = [[[vocab.get(c, unk) for c in ent] for ent in list(lookup_table.get(t, []))[:max_entities]]
                    for t in split_sent]
        ids, pos, visible_matrix = reference_tree(words, branches, max_length, vocab["[PAD]"])
        know_sent_batch.append(ids)
        position_batch.append(pos)
        visible_matrix_batch.append(visible_matrix)
    return know_sent_batch, position_batch, visible_matrix_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=1024)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--max-entities", type=int, default=2)
    ap.add_argument("--kg", type=Path, default=DATA / "kg" / "HowNet.spo.gz")
    ap.add_argument("--corpus", type=Path, default=DATA / "corpus" / "zh" / "book_review" / "dev.tsv.gz")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "kbert_tree.json")
    args = ap.parse_args()

    from kept.fusion.kbert import JiebaSubjectSegmenter
    from kept.fusion.kbert.branches import BranchTable
    from kept.fusion.kbert.reference import seeded_lookup_table
    from kept.fusion.kbert.tree import SentenceTreeBuilder
    from kept.kg import open_store
    from kept.kg.build import BuildOptions, build_store
    from kept.train.data import load_tokenizer

    tokenizer = load_tokenizer(ROOT / "kg_data" / "vocab" / "bert-base-chinese-vocab.txt")
    with gzip.open(args.corpus, "rt", encoding="utf-8") as f:
        next(f)
        texts = [line.rstrip("\n").split("\t", 1)[1] for _, line in zip(range(args.sentences), f)]
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(build_store([(args.kg, None)], Path(tmp) / "store", BuildOptions(progress=False)).path)
        segmenter = JiebaSubjectSegmenter(tokenizer, store)
        t0 = time.perf_counter()
        examples = [segmenter(t) for t in texts]
        segment_s = time.perf_counter() - t0
        branches = BranchTable(store, tokenizer, "zh", max_entities=args.max_entities, with_predicate=True)
        builder = SentenceTreeBuilder(tokenizer, branches, args.max_length, add_sep=False, pad_to_max_length=True)

        # the reference's inputs: the same words, its lookup table (subject -> branch strings, seeded order)
        lookup = seeded_lookup_table(branches)
        words = [["[CLS]"] + segmenter.words(t) for t in texts]
        vocab = tokenizer.get_vocab()
        vocab.update({c: i for c, i in ((c, vocab.get(c.lower())) for c in map(chr, range(0x250))) if c not in vocab
                      and i is not None})  # the same lowercase fallback as kept's character lookup
        special = {"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"}

        def run_reference() -> dict[str, torch.Tensor]:
            ids, pos, vms = reference_batch(words, lookup, vocab, special, args.max_entities, args.max_length)
            return {"input_ids": torch.from_numpy(np.stack(ids)), "position_ids": torch.from_numpy(np.stack(pos)),
                    "visible_matrix": torch.from_numpy(np.stack(vms))}

        def run_kept() -> dict[str, torch.Tensor]:
            return builder(examples).as_dict()

        ref, ours = run_reference(), run_kept()
        for key in ("input_ids", "position_ids", "visible_matrix"):
            if not torch.equal(ref[key], ours[key]):
                raise SystemExit(f"kept and the reference differ in {key}")
        times: dict[str, list[float]] = {"reference": [], "kept": []}
        for _ in range(args.repeats):
            for name, fn in (("reference", run_reference), ("kept", run_kept)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        branch_tokens = int(ours["is_branch"].sum())
    ref_s, kept_s = min(times["reference"]), min(times["kept"])
    result = {"command": " ".join([".venv/bin/python", "bench/kbert_tree.py", *sys.argv[1:]]), "sentences": len(texts), "max_length": args.max_length, "max_entities": args.max_entities,
              "kg": args.kg.name, "corpus": str(args.corpus.relative_to(DATA)) if args.corpus.is_relative_to(DATA)
              else str(args.corpus), "branch_tokens_in_batch": branch_tokens,
              "outputs_equal": True, "reference_seconds": ref_s, "kept_seconds": kept_s, "ratio": ref_s / kept_s,
              "jieba_segmentation_seconds_not_timed": segment_s, "torch_threads": torch.get_num_threads(),
              "machine": platform.machine(), "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| sentences x max_length | reference (per sentence loops) | kept (batched) | ratio |")
    print("|---|---|---|---|")
    print(f"| {len(texts)} x {args.max_length} | {ref_s * 1e3:.0f} ms | {kept_s * 1e3:.1f} ms | {ref_s / kept_s:.0f}x |")


if __name__ == "__main__":
    main()
