"""Opening a KG store of 1M entities: memory-mapped open vs reading everything eagerly.

    python bench/store_open.py [--entities 1000000] [--triples 5000000] [--quick] [--out JSON]

Builds a synthetic store (a K-BERT .spo file of random triples over N entity
names), then times, in the same run:
  * ``open_store`` + one key lookup + one neighbour query (what a user waits for);
  * the eager reference: ``np.load`` of every array without mmap plus reading every
    entity row from SQLite (what a store that loads on open would cost).
Writes ``bench/results/store_open.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from kept.kg import open_store
from kept.kg.build import BuildOptions, build_store


def make_spo(path: Path, n_entities: int, n_triples: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, n_triples, 500_000):
            m = min(500_000, n_triples - start)
            h = rng.integers(0, n_entities, m)
            t = rng.integers(0, n_entities, m)
            r = rng.integers(0, 50, m)
            if start == 0:  # every entity appears at least once
                k = min(m, n_entities)
                h[:k] = np.arange(k)
            f.write("".join(f"entity{a}\trel{b}\tentity{c}\n" for a, b, c in zip(h.tolist(), r.tolist(), t.tolist())))


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--triples", type=int, default=5_000_000)
    ap.add_argument("--quick", action="store_true", help="smoke size: 2,000 entities, 10,000 triples")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "store_open.json")
    args = ap.parse_args()
    if args.quick:
        args.entities, args.triples = 2_000, 10_000
    probe_key = f"entity{min(123456, args.entities - 1)}"  # appears: every entity heads a triple

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "synthetic.spo"
        make_spo(src, args.entities, args.triples)
        t0 = time.perf_counter()
        build_store([(src, "spo")], Path(d) / "store", BuildOptions(progress=False))
        build_s = time.perf_counter() - t0
        path = Path(d) / "store"

        def lazy_open():
            s = open_store(path)
            e = s.entity_id(probe_key)
            s.neighbours(e)
            s.label(e)

        def eager_load():
            for name in ("triples", "out_indptr", "in_indptr", "in_index"):
                np.load(path / f"{name}.npy")
            db = sqlite3.connect(path / "names.sqlite")
            db.execute("SELECT id, key, label FROM entities").fetchall()
            db.close()

        s = open_store(path)
        lazy = best_of(lazy_open)
        eager = best_of(eager_load, repeat=3)
        result = {"entities": s.num_entities, "triples": s.num_triples, "build_seconds": round(build_s, 2),
                  "open_and_first_queries_seconds": lazy, "eager_load_seconds": eager,
                  "eager_over_open": eager / lazy}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| entities | triples | open + lookup + neighbours | eager load of the same store | ratio |")
    print("|---|---|---|---|---|")
    print(f"| {result['entities']:,} | {result['triples']:,} | {lazy * 1e3:.2f} ms | {eager:.2f} s "
          f"| {result['eager_over_open']:.0f}× |")


if __name__ == "__main__":
    main()
