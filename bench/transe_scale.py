"""One TransE epoch on a generated KG of 1M entities / 5M triples: time and peak memory.

    python bench/transe_scale.py [--entities 1000000] [--triples 5000000] [--dim 100] [--quick] [--out JSON]

1. Generates random triples (every entity used, 50 relations) in OpenKE format and builds
   a store from them in a subprocess (so the build's memory is not counted).
2. In this process: first trains one epoch on a tiny generated KG (10k entities), so that
   the fixed costs (Lightning, compiled kernels, allocator pools) are in the baseline;
   then opens the store, trains one epoch with the default recipe
   (``TransEConfig()`` with ``--dim``; lazy ``sparse_adam``; no validation) through the
   same ``train_transe`` as ``kept kg embed``, and records the peak RSS.
3. Compares the peak with the stated budget: the process baseline (Python, torch,
   Lightning, compiled kernels: the peak RSS after the warm-up run) + 12 bytes × dim per entity (parameters + Adam's two moments; the sparse
   gradient holds only the rows of one batch) + 32 bytes per training triple (int64
   triples and the epoch's permutation) + 24 bytes per known triple (the filter index for
   validation) + 24 bytes per triple of the store's memory-mapped arrays (all triples and
   the splits, int32), plus 5 % for allocator slack. RSS is also sampled every 0.2 s, to show where the peak is.

Writes ``bench/results/transe_scale.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def generate(out: Path, n_entities: int, n_triples: int, n_relations: int = 50, seed: int = 0) -> None:
    """OpenKE files with random triples; a 90/5/5 split as train/valid/test files."""
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    h = rng.integers(0, n_entities, n_triples)
    h[:n_entities] = np.arange(n_entities)  # every entity appears
    t = rng.integers(0, n_entities, n_triples)
    r = rng.integers(0, n_relations, n_triples)
    with open(out / "entity2id.txt", "w") as f:
        f.write(f"{n_entities}\n")
        f.writelines(f"e{i}\t{i}\n" for i in range(n_entities))
    with open(out / "relation2id.txt", "w") as f:
        f.write(f"{n_relations}\n")
        f.writelines(f"r{i}\t{i}\n" for i in range(n_relations))
    order = rng.permutation(n_triples)
    n_small = n_triples // 20
    parts = {"valid": order[:n_small], "test": order[n_small : 2 * n_small], "train": order[2 * n_small :]}
    for name, rows in parts.items():
        np.savetxt(out / f"{name}2id.txt", np.stack([h[rows], t[rows], r[rows]], axis=1), fmt="%d",
                   header=str(len(rows)), comments="")


def build(args: argparse.Namespace) -> None:
    from kept.kg.build import BuildOptions, build_store

    generate(args.work / "openke", args.entities, args.triples)
    build_store([(args.work / "openke", "openke")], args.work / "store", BuildOptions(progress=False))
    # the warm-up KG, in the same subprocess (one interpreter start fewer)
    generate(args.work / "tiny" / "openke", args.warmup_entities, 5 * args.warmup_entities)
    build_store([(args.work / "tiny" / "openke", "openke")], args.work / "tiny" / "store", BuildOptions(progress=False))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


class RssSampler(threading.Thread):
    """Samples this process's RSS every ``interval`` seconds: [(seconds, MB)]."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval, self.samples, self._stop_event = interval, [], threading.Event()
        self._start = time.perf_counter()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.samples.append((round(time.perf_counter() - self._start, 1), round(rss_mb())))

    def stop(self) -> list[tuple[float, float]]:
        self._stop_event.set()
        self.join()
        return self.samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--triples", type=int, default=5_000_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=0, help="default: the recipe's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup-entities", type=int, default=10_000,
                        help="entities of the warm-up KG (5 triples each; default: 10000)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke size (seconds): 5,000 entities, 20,000 triples, dim 16, warm-up on 1,000 entities")
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "transe_scale.json")
    args = parser.parse_args()
    if args.quick:
        args.entities, args.triples, args.dim, args.warmup_entities = 5_000, 20_000, 16, 1_000
    if args.build:
        return build(args)

    from kept.kg import open_store
    from kept.kg.transe.config import TransEConfig
    from kept.kg.transe.train import train_transe

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--build", "--work", str(work), "--entities", str(args.entities),
                        "--triples", str(args.triples), "--warmup-entities", str(args.warmup_entities)], check=True)
        build_seconds = time.perf_counter() - start
        defaults = TransEConfig()
        warm = TransEConfig(dim=args.dim, epochs=1, eval_every=2, batch_size=args.batch_size or defaults.batch_size)
        train_transe(open_store(work / "tiny" / "store"), warm, work / "tiny" / "run", accelerator="cpu", devices=1,
                     progress=False, evaluate=False)
        store = open_store(work / "store")
        baseline_mb = peak_rss_mb()
        config = TransEConfig(dim=args.dim, epochs=1, eval_every=2, batch_size=args.batch_size or defaults.batch_size)
        sampler = RssSampler()
        sampler.start()
        start = time.perf_counter()
        result = train_transe(store, config, work / "run", accelerator="cpu", devices=1, progress=False,
                              evaluate=False)
        seconds = time.perf_counter() - start
        samples = sampler.stop()
        peak_mb = peak_rss_mb()
        n_train, n_known = len(store.split("train")), store.num_triples
    model_mb = 12 * args.dim * store.num_entities / 2**20
    triples_mb = ((24 + 8) * n_train + (24 + 24) * n_known) / 2**20
    report = {
        "entities": store.num_entities, "train_triples": n_train, "dim": args.dim, "batch_size": config.batch_size,
        "negatives": config.negatives, "build_seconds": round(build_seconds, 1),
        "epoch_seconds": round(result.epoch_seconds[0], 1), "fit_seconds": round(seconds, 1),
        "bytes_per_entity": 12 * args.dim, "baseline_rss_mb": round(baseline_mb), "model_state_mb": round(model_mb),
        "triples_mb": round(triples_mb), "stated_mb": round(baseline_mb + model_mb + triples_mb),
        "stated_with_slack_mb": round(1.05 * (baseline_mb + model_mb + triples_mb)),
        "peak_rss_mb": round(peak_mb), "threads": args.threads, "rss_samples_mb": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("| entities | train triples | dim | epoch s | bytes/entity | stated MB (+5 %) | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {report['entities']:,} | {n_train:,} | {args.dim} | {report['epoch_seconds']} | "
          f"{report['bytes_per_entity']} | {report['stated_mb']:,} ({report['stated_with_slack_mb']:,}) | "
          f"{report['peak_rss_mb']:,} |")


if __name__ == "__main__":
    main()
