"""kept TransE vs PyKEEN 1.11 TransE at identical settings, in the same run.

    python bench/transe.py [--store STORE | --data OPENKE_DIR] [--epochs 5] [--threads 2] [--skip-pykeen]

Settings (both sides): dim 100, batch 1024, one negative per positive (head or tail
replaced 50/50, no sharing), L1 distance, margin ranking loss with margin 1, entities
renormalised to unit norm, Adam lr 0.001, the same number of epochs, no validation,
the same glibc malloc thresholds (kept sets them itself; PyKEEN's subprocess gets them
through its environment: ``PYKEEN_MALLOC_ENV``).
kept runs twice: with its default lazy ``sparse_adam`` and with dense ``adam`` (PyKEEN's
optimizer). Measured: seconds per training epoch (the three sides interleaved, 1 +
``--repeats`` runs each, the fastest kept), and the filtered evaluation of the
full test split (both directions, filtered with train + valid + test) — kept's
:func:`kept.kg.transe.evaluate.evaluate_link_prediction` vs PyKEEN's ``RankBasedEvaluator``
(its automatic batch size). kept's evaluation runs 3 times: the table gives the best and,
in brackets, the first call, which includes compiling the L1 kernel with torch.compile
(15-30 s the first time on a machine, cached on disk after). PyKEEN runs once.
Then every side trains with ``--seeds`` seeds and all the vectors are evaluated by kept's
evaluation (PyKEEN's seed-0 vectors by both evaluations, which must agree), so that the
MRR comparison is not one seed's luck.

PyKEEN lives only in ``bench/.venv-pykeen`` (create it with ``make bench-env``); it
runs ``bench/pykeen_transe.py`` as a subprocess on the same triples (exported from the
store to an .npz). Without ``--store`` the FB15k-237 store is built from
``../shared/data/kge/FB15k-237`` (or the OpenKE dataset ``--data``) into a temporary
directory. Writes ``bench/results/transe.json`` (``--out``) as it goes: after every timed
run, evaluation and seed, with ``"complete": false`` until the end, so that a failure late in
the run keeps what was measured. Prints a Markdown table at the end.

Smoke size (seconds, no PyKEEN): ``--data TINY_OPENKE --epochs 1 --repeats 0 --seeds 1 --skip-pykeen``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from kept.kg import open_store
from kept.kg.build import BuildOptions, build_store
from kept.kg.transe.config import TransEConfig
from kept.kg.transe.evaluate import KnownTriples, evaluate_link_prediction
from kept.kg.transe.train import train_transe
from kept.runtime import MMAP_THRESHOLD, TRIM_THRESHOLD

ROOT = Path(__file__).resolve().parents[1]
#: the interpreter of bench/.venv-pykeen (``make bench-env``); KEPT_PYKEEN_PYTHON overrides it (tests)
PYKEEN_PYTHON = Path(os.environ.get("KEPT_PYKEEN_PYTHON") or ROOT / "bench" / ".venv-pykeen" / "bin" / "python")
FB15K237 = ROOT.parent / "shared" / "data" / "kge" / "FB15k-237"
#: kept's training sets these glibc malloc thresholds for itself (kept.runtime.reuse_freed_memory);
#: PyKEEN gets the same through the environment, so both sides run with the same allocator settings
PYKEEN_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}


PYKEEN_MISSING = (f"{PYKEEN_PYTHON} missing: create it with `make bench-env` (see bench/README.md) "
                  "or pass --skip-pykeen")


def run_kept(store, settings: dict, optimizer: str, work: Path, evaluate: bool = True) -> dict:
    config = TransEConfig(dim=settings["dim"], norm=settings["norm"], margin=settings["margin"],
                          adversarial_temperature=0.0, negatives=settings["negatives"], chunk_size=1,
                          sampler="uniform", normalize_entities=True, optimizer=optimizer, lr=settings["lr"],
                          batch_size=settings["batch_size"], epochs=settings["epochs"],
                          eval_every=settings["epochs"] + 1, seed=settings["seed"])
    result = train_transe(store, config, work / optimizer, accelerator="cpu", devices=1, progress=False,
                          evaluate=False)
    timing = {"seconds_per_epoch": float(np.mean(result.epoch_seconds)), "epoch_seconds": result.epoch_seconds,
              "vectors": (result.entity, result.relation)}
    if not evaluate:
        return timing
    known = KnownTriples(np.asarray(store.triples), store.num_relations)
    seconds = []
    for _ in range(3):  # the first call in a process includes compiling the L1 kernel (cached on disk after)
        start = time.perf_counter()
        test = evaluate_link_prediction(result.entity, result.relation, np.asarray(store.split("test")), known,
                                        settings["norm"])
        seconds.append(time.perf_counter() - start)
    return {**timing, "eval_seconds": min(seconds), "eval_seconds_all": seconds, "test": test}


def run_pykeen(store, settings: dict, work: Path, evaluate: bool = True) -> dict:
    if not PYKEEN_PYTHON.exists():
        raise SystemExit(PYKEEN_MISSING)
    npz = work / "triples.npz"
    np.savez(npz, **{k: np.asarray(store.split(k), dtype=np.int64) for k in ("train", "valid", "test")},
             num_entities=store.num_entities, num_relations=store.num_relations)
    proc = subprocess.run([str(PYKEEN_PYTHON), str(ROOT / "bench" / "pykeen_transe.py"), str(npz),
                           json.dumps({**settings, "evaluate": evaluate})], capture_output=True, text=True,
                          env={**os.environ, **PYKEEN_MALLOC_ENV})
    if proc.returncode != 0:
        raise SystemExit(f"PyKEEN run failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    vectors = np.load(settings["save_vectors"])
    return {**result, "vectors": (vectors["entity"], vectors["relation"])}


def mrr_over_seeds(store, settings: dict, runs: dict, seeds: int, on_seed=None) -> dict:
    """Test MRR of every side for seeds 0..seeds-1, all evaluated by kept's evaluation.

    Seed 0 is the main run (whose PyKEEN vectors PyKEEN itself also evaluated: the two
    evaluations must agree, which checks that both compute the same metric).
    """
    known = KnownTriples(np.asarray(store.triples), store.num_relations)
    test = np.asarray(store.split("test"))
    out = {name: [] for name in runs}
    for seed in range(seeds):
        for name, run in runs.items():
            print(f"{name}: seed {seed}", file=sys.stderr, flush=True)
            entity, relation = run(False, seed)["vectors"]
            out[name].append(evaluate_link_prediction(entity, relation, test, known, settings["norm"])["overall"])
            if on_seed is not None:
                on_seed(out)
    return out


def table(results: dict) -> str:
    rows = ["| run | s / epoch | test eval s (first call) | test MRR | test H@10 | epoch speed-up | "
            "eval speed-up (first call) | test MRR, mean of seeds (min–max) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    ref = results.get("pykeen")
    for name, r in results.items():
        first = r.get("eval_seconds_all", [r["eval_seconds"]])[0]
        up_epoch = f"{ref['seconds_per_epoch'] / r['seconds_per_epoch']:.1f}×" if ref else "–"
        up_eval = f"{ref['eval_seconds'] / r['eval_seconds']:.0f}× ({ref['eval_seconds'] / first:.0f}×)" if ref else "–"
        m = r["test"]["overall"]
        seeds = r.get("test_mrr_by_seed", [m["mrr"]])
        rows.append(f"| {name} | {r['seconds_per_epoch']:.2f} | {r['eval_seconds']:.1f} ({first:.1f}) | "
                    f"{m['mrr']:.4f} | {m['hits@10']:.4f} | {up_epoch} | {up_eval} | "
                    f"{np.mean(seeds):.4f} ({min(seeds):.4f}–{max(seeds):.4f}), {len(seeds)} seeds |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, help="a store with train/valid/test (default: build --data)")
    parser.add_argument("--data", type=Path, default=FB15K237,
                        help=f"OpenKE dataset built when --store is not given (default: {FB15K237})")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on both sides (default: 2)")
    parser.add_argument("--skip-pykeen", action="store_true")
    parser.add_argument("--repeats", type=int, default=2,
                        help="training-only runs of each side before the run with evaluation (default: 2)")
    parser.add_argument("--seeds", type=int, default=4,
                        help="seeds whose test MRR is compared, all through kept's evaluation (default: 4)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "transe.json")
    args = parser.parse_args()
    if not args.skip_pykeen and not PYKEEN_PYTHON.exists():
        parser.exit(2, PYKEEN_MISSING + "\n")  # before minutes of kept runs, not after
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    settings = {"dim": 100, "batch_size": 1024, "negatives": 1, "norm": 1, "margin": 1.0, "lr": 1e-3,
                "epochs": args.epochs, "seed": 0, "threads": args.threads}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        built = args.store is None
        if built:
            args.store = work / "fb15k237"
            build_store([(args.data, "openke")], args.store, BuildOptions(progress=False))
        store = open_store(args.store)
        # everything the report needs from the store is read now: a built store lives in `work`,
        # which is gone once the `with` block ends
        report = {"settings": settings, "store": None if built else str(args.store),
                  "data": str(args.data) if built else None, "entities": store.num_entities,
                  "test_triples": len(store.split("test")), "load_average_at_start": load_start,
                  "complete": False, "epoch_seconds_so_far": {}, "results": {}}

        def save() -> None:
            """Write the report as it stands (atomically), so that a late failure keeps what was measured."""
            report["load_average_at_end"] = os.getloadavg()
            partial = args.out.with_name(args.out.name + ".tmp")
            partial.write_text(json.dumps(report, indent=2, default=_plain) + "\n")
            partial.replace(args.out)

        def settings_for(seed: int) -> dict:
            return {**settings, "seed": seed, "save_vectors": str(work / "pykeen_vectors.npz")}

        runs = {f"kept ({o})": lambda ev, seed=0, o=o: run_kept(store, settings_for(seed), o, work, ev)
                for o in ("sparse_adam", "adam")}
        if not args.skip_pykeen:
            runs["pykeen"] = lambda ev, seed=0: run_pykeen(store, settings_for(seed), work, ev)
        # training: the sides interleaved, --repeats times, the fastest run of each kept;
        # then one more run of each with the test evaluation
        epoch_seconds = report["epoch_seconds_so_far"]
        for name in runs:
            epoch_seconds[name] = []
        for repeat in range(args.repeats):
            for name, run in runs.items():
                print(f"{name}: training, repeat {repeat + 1}", file=sys.stderr, flush=True)
                epoch_seconds[name].append(run(False)["seconds_per_epoch"])
                save()
        results = report["results"]
        for name, run in runs.items():
            print(f"{name}: training + evaluation", file=sys.stderr, flush=True)
            result = run(True)
            result.pop("vectors")
            epoch_seconds[name].append(result["seconds_per_epoch"])
            result["seconds_per_epoch_all"] = list(epoch_seconds[name])
            result["seconds_per_epoch"] = min(epoch_seconds[name])
            results[name] = result
            save()
        seeds = mrr_over_seeds(store, settings, runs, args.seeds, on_seed=lambda so_far: (
            report.update(test_mrr_by_seed_so_far={k: [m["mrr"] for m in v] for k, v in so_far.items()}), save()))
        for name, result in results.items():
            result["test_mrr_by_seed"] = [m["mrr"] for m in seeds[name]]
            result["test_hits10_by_seed"] = [m["hits@10"] for m in seeds[name]]
        if "pykeen" in results:  # the same seed-0 PyKEEN vectors, evaluated by PyKEEN and by kept
            results["pykeen"]["cross_check"] = {"pykeen_evaluator_mrr": results["pykeen"]["test"]["overall"]["mrr"],
                                                "kept_evaluator_mrr": seeds["pykeen"][0]["mrr"]}
        report.pop("epoch_seconds_so_far")
        report.pop("test_mrr_by_seed_so_far", None)
        report["table"] = table(results)
        report["complete"] = True
        save()
    print(report["table"])


def _plain(value):
    """JSON for NumPy scalars and arrays in the results."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

if __name__ == "__main__":
    main()
