"""K-BERT's own evaluations with kept: Chinese classification and medical NER, with and without the KG.

    .venv/bin/python experiments/kbert_zh/run.py --out runs/kbert_zh --seeds 1 2 3
    .venv/bin/python experiments/kbert_zh/run.py --out runs/kbert_zh --report-only   # tables from finished runs

1. **A shared Chinese base** (the "shared base" protocol of the English study): the CLUECorpusSmall
   sample (``--corpus``) cut into sentences (:func:`kept.demo_zh.corpus_sentences`), built into a
   corpus with the Chinese vocabulary (no KG), and a BERT pretrained on it with the ``mlm`` method for
   ``--base-steps`` steps (experiments/demo/pretrain.yaml's model sizes), exported to ``OUT/base``.
2. **Fine-tuning from that base**, per task and seed, once without and once with the task's KG
   (``kept finetune``; same seed, same settings, the runs differ only by ``--kg``):
   book_review and chnsenticorp with HowNet (accuracy), medical_ner with the Medical KG (entity F1).
3. **The table** ``OUT/results.json`` + ``OUT/results.md``: per task and condition the test metric's
   mean ± std over seeds, and the paired difference (KG − none) with a 95 % percentile bootstrap over
   test examples (sentences for NER: the per-sentence entity tp/fp/fn are resampled and F1 recomputed),
   on the per-example outcomes averaged over the seeds.

Every run directory that already holds ``metrics.json`` is reused, so an interrupted experiment resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
TASKS = {  # name: (data dir, kg source, finetune task, metric)
    "book_review": (DATA / "corpus" / "zh" / "book_review", "kbert/HowNet.spo.gz", "classification", "accuracy"),
    "chnsenticorp": (DATA / "corpus" / "zh" / "chnsenticorp", "kbert/HowNet.spo.gz", "classification", "accuracy"),
    "medical_ner": (DATA / "corpus" / "zh" / "medical_ner", "kbert/Medical.spo", "ner", "f1"),
}


def base_model(args: argparse.Namespace) -> Path:
    """Pretrain (or reuse) the shared Chinese base model ``OUT/base``."""
    out = args.out / "base"
    if (out / "config.json").exists():
        return out
    from kept.data.build import CorpusOptions, build_linked_corpus
    from kept.demo_zh import corpus_sentences
    from kept.train.cli import main as pretrain_main

    texts = args.out / "corpus" / "sentences.txt"
    n = corpus_sentences(args.corpus, texts, args.documents)
    vocab = ROOT / "kg_data" / "vocab" / "bert-base-chinese-vocab.txt"
    corpus = build_linked_corpus(texts, args.out / "corpus" / "linked", vocab, None, CorpusOptions(lang="zh"),
                                 workers=0, overwrite=True)
    print(f"[base] {n:,} sentences; pretraining mlm for {args.base_steps} steps", flush=True)
    pretrain_main(["--method", "mlm", "--config", str(ROOT / "experiments" / "demo" / "pretrain.yaml"),
                   "--data.corpus", str(corpus.path), "--data.vocab", str(vocab), "--data.max_length", "128",
                   "--model.max_position_embeddings", "512", "--trainer.max_steps", str(args.base_steps),
                   "--trainer.val_check_interval", str(max(args.base_steps // 4, 1)),
                   "--trainer.default_root_dir", str(args.out / "base_run"), "--export", str(out)])
    return out


def store(args: argparse.Namespace, source: str) -> Path:
    from kept.kg.build import BuildOptions, build_store

    out = args.out / "stores" / Path(source).name.split(".")[0]
    if not (out / "meta.json").exists():
        build_store([(ROOT / "kg_data" / source, None)], out, BuildOptions(progress=False))
    return out


def finetune_runs(args: argparse.Namespace, base: Path) -> None:
    from kept.train.finetune import main as finetune_main

    for task in args.tasks:
        data, source, kind, _ = TASKS[task]
        kg = store(args, source)
        for seed in args.seeds:
            for condition in ("none", "kg"):
                run = args.out / task / f"{condition}-seed{seed}"
                if (run / "metrics.json").exists():
                    continue
                argv = ["--task", kind, "--data", str(data), "--pretrained", str(base), "--out", str(run),
                        "--seed", str(seed), "--epochs", str(args.epochs), "--lr", str(args.lr), "--threads",
                        str(args.threads), "--no-progress", "--accelerator", args.device]
                argv += ["--limit-train", str(args.limit_train)] if args.limit_train else []
                argv += ["--limit-eval", str(args.limit_eval)] if args.limit_eval else []
                argv += ["--store", str(kg)] if condition == "kg" else []
                print(f"[finetune] {task} {condition} seed {seed}", flush=True)
                if finetune_main(argv) != 0:
                    raise RuntimeError(f"kept finetune failed: {' '.join(argv)}")


def _outcomes(run: Path, kind: str) -> np.ndarray:
    """Per test example: 0/1 correct [N] (classification) or entity tp, fp, fn [S, 3] (NER)."""
    if kind == "ner":
        return np.load(run / "test_entity_counts.npy", allow_pickle=False).astype(np.float64)
    predictions = np.load(run / "test_predictions.npy", allow_pickle=False)
    return (predictions[:, 0] == predictions[:, 1]).astype(np.float64)


def _metric(outcomes: np.ndarray, kind: str) -> np.ndarray:
    """Accuracy of [..., N] outcomes, or micro F1 of [..., S, 3] counts (over the last axes)."""
    if kind != "ner":
        return outcomes.mean(-1)
    tp, fp, fn = np.moveaxis(outcomes.sum(-2), -1, 0)
    return 2 * tp / np.maximum(2 * tp + fp + fn, 1e-12)


def paired_interval(kg: np.ndarray, none: np.ndarray, kind: str, replicates: int = 10_000,
                    seed: int = 0) -> dict:
    """Paired difference ``metric(kg) − metric(none)`` over the same test examples, with a 95 % percentile
    bootstrap (examples resampled with replacement, the same draw for both conditions)."""
    rng = np.random.default_rng(seed)
    estimate = float(_metric(kg, kind) - _metric(none, kind))
    diffs = np.empty(replicates)
    for start in range(0, replicates, 500):                                 # [500, N] draws at a time
        draw = rng.integers(0, len(kg), size=(min(500, replicates - start), len(kg)))
        diffs[start : start + len(draw)] = _metric(kg[draw], kind) - _metric(none[draw], kind)
    low, high = np.quantile(diffs, [0.025, 0.975])
    return {"estimate": estimate, "low": float(low), "high": float(high), "replicates": replicates}


def report(args: argparse.Namespace) -> dict:
    from kept.probe.stats import mean_std

    results: dict = {}
    for task in args.tasks:
        _, source, kind, metric = TASKS[task]
        seeds = [s for s in args.seeds if all((args.out / task / f"{c}-seed{s}" / "metrics.json").exists()
                                              for c in ("none", "kg"))]
        if not seeds:
            continue
        entry: dict = {"metric": f"test {metric}", "store": source, "seeds": seeds}
        outcomes = {}
        for condition in ("none", "kg"):
            runs = [args.out / task / f"{condition}-seed{s}" for s in seeds]
            values = [json.loads((r / "metrics.json").read_text())[f"test_{metric}"] for r in runs]
            entry[condition] = {**mean_std(values), "values": values,
                                "seconds": [json.loads((r / "metrics.json").read_text())["seconds"] for r in runs]}
            outcomes[condition] = np.mean([_outcomes(r, kind) for r in runs], axis=0)   # averaged over seeds
        entry["difference"] = paired_interval(outcomes["kg"], outcomes["none"], kind)
        # the same seed with and without the KG: one paired difference per seed
        entry["seed_differences"] = mean_std([k - n for k, n in zip(entry["kg"]["values"], entry["none"]["values"])])
        results[task] = entry
    if not results:
        raise SystemExit(f"no finished pair of runs (none-seedS and kg-seedS with metrics.json) under {args.out}")
    lines = ["| task | metric | seeds | no KG | with KG | KG − none, per seed | KG − none, seed-averaged (95 % interval) |",
             "|---|---|---:|---|---|---|---|"]
    for task, e in results.items():
        d, s = e["difference"], e["seed_differences"]
        lines.append(f"| {task} | {e['metric']} | {len(e['seeds'])} | {e['none']['mean']:.4f} ± {e['none']['std']:.4f} "
                     f"| {e['kg']['mean']:.4f} ± {e['kg']['std']:.4f} | {s['mean']:+.4f} ± {s['std']:.4f} "
                     f"| {d['estimate']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] |")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "kbert_zh", help="default: runs/kbert_zh")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="default: 1 2 3")
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS), help="default: all three")
    p.add_argument("--corpus", type=Path, default=DATA / "corpus" / "zh" / "uer" / "CLUECorpusSmall_sampled.txt.gz")
    p.add_argument("--documents", type=int, default=2500, help="corpus documents for the base (default 2500)")
    p.add_argument("--base-steps", type=int, default=2000, help="base pretraining steps (default 2000)")
    p.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (default 3)")
    p.add_argument("--lr", type=float, default=1e-3, help="fine-tuning peak learning rate (default 1e-3)")
    p.add_argument("--limit-train", type=int, default=None, help="first N training rows (default: all)")
    p.add_argument("--limit-eval", type=int, default=None, help="first N dev and test rows (default: all)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", default="cpu", help="Lightning accelerator (default cpu)")
    p.add_argument("--report-only", action="store_true", help="only tabulate finished runs")
    args = p.parse_args(argv)
    started = time.perf_counter()
    if not args.report_only:
        finetune_runs(args, base_model(args))
    report(args)
    print(f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
