"""Is the data path ever the bottleneck? Batch building vs a BERT-base training step, on CPU.

    python bench/data_path.py [--batch-size 16] [--max-length 128] [--steps 3] [--quick] [--out JSON]

Builds a linked corpus from the shipped T-REx sentences (linked to the shipped
T-REx store), then times, in the same run:
  * building batches exactly as training does (PretrainDataModule's collate:
    per-batch seeded Baidu-ERNIE masking, at the entity level, the most work);
  * one training step (forward + backward + AdamW) of a BERT-base-size
    BertForMaskedLM (12 layers, 768 hidden) on those batches.
The ratio step time / batch time says how many loader processes' worth of
headroom the data path has (goal: >= 10). Writes bench/results/data_path.json.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MODEL_SIZES = {"base": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
               "tiny": dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3, help="timed training steps (after one warm-up)")
    ap.add_argument("--sentences", type=int, default=0,
                    help="link only the first N shipped T-REx sentences (default: 0, all)")
    ap.add_argument("--model-size", choices=sorted(MODEL_SIZES), default="base",
                    help="BERT size of the timed step (default: base; tiny: hidden 64, 2 layers)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke size (seconds): 300 sentences, --model-size tiny, --max-length 32, 1 step")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "data_path.json")
    args = ap.parse_args()
    if args.quick:
        args.sentences, args.model_size, args.max_length, args.steps = 300, "tiny", 32, 1
    torch.set_num_threads(torch.get_num_threads())

    from kept.data.build import CorpusOptions, build_linked_corpus
    from kept.data.loading import CorpusDataset, EpochBatchSampler
    from kept.kg.build import BuildOptions, build_store
    from kept.masking.ernie import CurriculumSchedule
    from kept.train.data import PretrainDataModule, SeededCollate
    from kept.train.mlm import MaskedLMModule

    vocab = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"
    with tempfile.TemporaryDirectory() as d:
        store = build_store([(ROOT / "kg_data" / "trex" / "trex_facts.nt.gz", None)], Path(d) / "store",
                            BuildOptions(progress=False)).path
        sentences = ROOT / "kg_data" / "trex" / "sentences.jsonl.gz"
        if args.sentences > 0:
            with gzip.open(sentences, "rt", encoding="utf-8") as f:
                (Path(d) / "sentences.jsonl").write_text("".join(itertools.islice(f, args.sentences)), encoding="utf-8")
            sentences = Path(d) / "sentences.jsonl"
        corpus = build_linked_corpus(sentences, Path(d) / "corpus", vocab,
                                     store, CorpusOptions(), workers=0, progress=False)
        data = PretrainDataModule(str(corpus.path), str(vocab), masking="entity", batch_size=args.batch_size,
                                  max_length=args.max_length, val_fraction=0)
        data.setup()
        dataset = CorpusDataset(data.corpus, data.train_indices)
        sampler = EpochBatchSampler(len(dataset), args.batch_size, seed=0)
        collate = SeededCollate(data.collator, 0, len(sampler), schedule=CurriculumSchedule("entity"))

        # batches: fetch from the memory-mapped corpus + mask, for a whole epoch
        t0 = time.perf_counter()
        batches = [collate([dataset[key] for key in keys]) for keys in sampler]
        batch_s = (time.perf_counter() - t0) / len(batches)

        model = MaskedLMModule(vocab_size=data.vocab_size, **MODEL_SIZES[args.model_size], max_position_embeddings=512)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        full = [b for b in batches if b["input_ids"].shape[1] == args.max_length][: args.steps + 1]
        times = []
        for batch in full:
            t0 = time.perf_counter()
            loss = model(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - t0)
        if len(times) < 2:
            raise SystemExit(f"only {len(times)} batches of exactly {args.max_length} tokens: "
                             "need --steps + 1 (lower --max-length or --steps)")
        step_s = min(times[1:])
        full_batch_s = []
        for keys in list(sampler)[:50]:
            t0 = time.perf_counter()
            collate([dataset[key] for key in keys])
            full_batch_s.append(time.perf_counter() - t0)
    result = {"batch_size": args.batch_size, "max_length": args.max_length, "threads": torch.get_num_threads(),
              "batches": len(batches), "batch_seconds_mean": batch_s, "batch_seconds_max_of_50": max(full_batch_s),
              "model_size": args.model_size, "sentences": args.sentences or "all",
              "bert_base_step_seconds" if args.model_size == "base" else "step_seconds": step_s, "ratio_step_over_batch": step_s / batch_s,
              "ratio_step_over_slowest_batch": step_s / max(full_batch_s)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| batch | build one batch (mean) | slowest of 50 | {args.model_size} train step | step / batch |")
    print("|---|---|---|---|---|")
    print(f"| {args.batch_size} x {args.max_length} | {batch_s * 1e3:.2f} ms | {max(full_batch_s) * 1e3:.2f} ms "
          f"| {step_s:.2f} s | {result['ratio_step_over_batch']:.0f}x (slowest: "
          f"{result['ratio_step_over_slowest_batch']:.0f}x) |")


if __name__ == "__main__":
    main()
