"""What both runs of ``kept demo`` share (``kept/demo.py``: English, ``kept/demo_zh.py``: Chinese): timed
stages and their table, TransE on a store, a method's pretraining on the demo budget, probing every model."""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from kept.methods import get_method


def timed(times: dict[str, float], stage: str, func, *args):
    """``func(*args)``, its wall time recorded in ``times[stage]`` (seconds) and printed as ``[stage] N s``."""
    start = time.perf_counter()
    result = func(*args)
    times[stage] = round(time.perf_counter() - start, 1)
    print(f"[{stage}] {times[stage]:.1f} s", flush=True)
    return result


def stage_table(times: dict[str, float], total: float) -> str:
    """The demo's stages and their seconds, as an aligned text table ending in the total."""
    width = max(len("total"), *(len(stage) for stage in times))
    lines = [f"{'stage':<{width}}  {'seconds':>8}", "-" * (width + 10)]
    lines += [f"{stage:<{width}}  {seconds:>8.1f}" for stage, seconds in times.items()]
    return "\n".join([*lines, "-" * (width + 10), f"{'total':<{width}}  {total:>8.1f}"])


def embed(args: argparse.Namespace, store: Path) -> dict:
    """TransE with the default configuration, capped at a demo budget (``--transe-epochs``, one minute);
    returns the test metrics."""
    from kept.kg.transe.cli import main as embed_main

    print(f"\n[kg embed] TransE on {store}", flush=True)
    if embed_main([str(store), "--epochs", str(args.transe_epochs), "--max-minutes", "1",
                  "--no-progress"]) != 0:
        raise RuntimeError(f"kept kg embed failed on {store}")
    metrics = json.loads((store / "embeddings" / "transe" / "metrics.json").read_text())
    return metrics.get("test", metrics)


def pretrain(args: argparse.Namespace, method: str, corpus, store: Path, vocab: Path, lang: str = "en") -> dict:
    """``kept pretrain --method METHOD`` on the demo budget (``--steps``) with ``vocab``, the method's
    knowledge from ``store``; exported to ``OUT/models/METHOD``; returns the last logged losses."""
    from kept.train.cli import main as pretrain_main

    print(f"\n[pretrain] {method}: {args.steps} steps", flush=True)
    run_dir = args.out / "runs" / method
    demo = Path("experiments") / "demo"
    # the demo budget, the method's own settings (ERNIE-T's layer split), then its per-language ones
    # (K-BERT's character labels in Chinese)
    configs = [demo / "pretrain.yaml", *(p for p in (demo / f"{method}.yaml", demo / lang / f"{method}.yaml")
                                         if p.exists())]
    argv = ["--method", method, *(a for c in configs for a in ("--config", str(c))),
            "--data.corpus", str(corpus.path), "--data.vocab", str(vocab),
            "--trainer.max_steps", str(args.steps), "--trainer.val_check_interval", str(max(args.steps // 2, 1)),
            "--trainer.default_root_dir", str(run_dir), "--trainer.logger.class_path",
            "pytorch_lightning.loggers.CSVLogger", "--trainer.logger.init_args.save_dir", str(run_dir),
            "--export", str(args.out / "models" / method)] + (["--no-progress"] if args.no_progress else [])
    # the method's store and, for staged masking, its stage boundaries within the demo's budget
    argv += get_method(method).pretrain_args(store=store, steps=args.steps)
    pretrain_main(argv)
    return _last_losses(run_dir)


def _last_losses(run_dir: Path) -> dict:
    """Last logged train and validation loss of a CSVLogger run."""
    metrics = sorted(run_dir.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)[-1]
    last: dict[str, float] = {}
    with open(metrics, newline="") as f:
        for row in csv.DictReader(f):
            for key, name in (("train/loss", "train"), ("val/loss", "val")):
                if row.get(key):
                    last[name] = float(row[key])
    return last


def probe_models(args: argparse.Namespace, data: Path, store: Path, extra: tuple[str, ...] = ()) -> dict:
    """``kept probe`` of every model in ``OUT/models`` on the probe set ``data`` with the method's knowledge
    from ``store`` (both modes; ``extra`` flags appended); macro metrics per model and mode."""
    from kept.probe.cli import main as probe_main

    out = args.out / "report" / "probe"
    print(f"\n[probe] {len(args.methods)} models on {data}", flush=True)
    argv = ["--data", str(data), "--store", str(store), "--out", str(out), "--mode", "both", "--no-progress", *extra]
    for method in args.methods:
        argv += ["--model", str(args.out / "models" / method), "--name", method]
    if probe_main(argv) != 0:
        raise RuntimeError("kept probe failed")
    models = json.loads((out / "metrics.json").read_text())["models"]
    return {name: {mode: m["macro"] for mode, m in info["modes"].items()} for name, info in models.items()}
