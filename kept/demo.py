"""``kept demo``: the end-to-end run on the shipped sample data (``kg_data/``).

Steps: build a KG store from every shipped sample; train TransE on the T-REx and
Medical stores (the linker uses the T-REx vectors for coherence; ERNIE-T uses them as
entity vectors); link the T-REx sentences to the T-REx store (a linked corpus); pretrain a
small BERT briefly with every registered method (:mod:`kept.methods`) and export each; probe every model on the shipped T-REx cloze set with the
method's knowledge; write a report folder (Markdown + plots) and print its path.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from kept.flags import add_no_progress, quiet_progress
from kept.methods import METHODS, get_method

#: (store name, input path relative to the data folder, build options)
SAMPLES: list[tuple[str, str, dict]] = [
    ("medical", "kbert/Medical.spo", {}),
    ("hownet", "kbert/HowNet.spo.gz", {}),
    ("wikidata", "wikidata/wikidata_latest-all_first50lines.json.gz", {"languages": ("en",)}),
    ("cndbpedia", "cndbpedia/baike_triples_sample.txt", {"languages": ("zh",)}),
    ("trex", "trex/trex_facts.nt.gz", {"languages": ("en",)}),
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the shipped sample data",
                       description="Run kept end to end on the shipped sample data: build the KG stores, "
                                   "TransE, entity linking, a short pretraining run of every method, cloze "
                                   "probing, and a report folder (Markdown + plots).")
    p.add_argument("--data", type=Path, default=Path("kg_data"), help="shipped data folder (default: kg_data)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: runs/demo; with --lang zh: runs/demo-zh)")
    p.add_argument("--steps", type=int, default=40, help="pretraining steps per method (default: 40)")
    p.add_argument("--transe-epochs", type=int, default=50, help="TransE epochs per store (default: 50)")
    p.add_argument("--workers", type=int, default=None, help="corpus-linking processes (default: all cores)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                   help=f"pretraining methods to run (default: all {len(METHODS)})")
    add_no_progress(p)
    p.add_argument("--lang", choices=("en", "zh"), default="en",
                   help="en: the T-REx run (default); zh: the Chinese run (kept/demo_zh.py: HowNet + Medical store, "
                        "CLUECorpusSmall sample linked with jieba, Chinese vocabulary, kg_data/zh_probe)")
    from kept.demo_zh import add_arguments as add_zh_arguments

    add_zh_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "lang", "en") == "zh":
        from kept.demo_zh import run as run_zh

        args.out = args.out or Path("runs/demo-zh")
        return run_zh(args)
    args.out = args.out or Path("runs/demo")
    start = time.perf_counter()
    quiet_progress(args.no_progress)
    times: dict[str, float] = {}
    summaries = timed(times, "kg build", build_stores, args)
    transe = {name: timed(times, f"kg embed {name}", embed, args, args.out / "stores" / name)
              for name in ("trex", "medical")}
    corpus = timed(times, "data build", link_corpus, args)
    vocab = args.data / "vocab" / "bert-base-uncased-vocab.txt"
    losses = {method: timed(times, f"pretrain {method}", pretrain, args, method, corpus, args.out / "stores" / "trex",
                            vocab) for method in args.methods}
    print()
    for method, loss in losses.items():
        print(f"[pretrain] {method:<12} final train loss {loss.get('train', float('nan')):.3f}  "
              f"val loss {loss.get('val', float('nan')):.3f}  -> {args.out / 'models' / method}")
    probe_metrics = timed(times, "probe", probe, args)
    summary = {"stores": summaries, "transe": transe, "corpus": corpus.meta, "pretrain": losses,
               "probe": probe_metrics, "stage_seconds": times, "seconds": round(time.perf_counter() - start, 1)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    report = write_report(args, summary)
    print()
    print(stage_table(times, summary["seconds"]))
    print(f"\ndone in {summary['seconds']} s; summary in {args.out / 'summary.json'}")
    print(f"report: {report}")
    return 0


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


def probe(args: argparse.Namespace) -> dict:
    """Cloze-probe every trained model on the shipped T-REx probe set; macro metrics per model."""
    return probe_models(args, args.data / "trex" / "probe", args.out / "stores" / "trex")


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


def write_report(args: argparse.Namespace, summary: dict) -> Path:
    """``OUT/report/README.md``: stores, TransE, pretraining losses and the probe tables and plots."""
    folder = args.out / "report"
    lines = ["# kept demo report", "", f"Run time: {summary['seconds']} s. Everything below was computed by "
             "`kept demo` on the shipped sample data (`kg_data/`).", "", "## KG stores", "",
             "| store | entities | relations | triples | aliases |", "|---|---:|---:|---:|---:|"]
    for name, s in summary["stores"].items():
        lines.append(f"| {name} | {s['entities']:,} | {s['relations']:,} | {s['triples']:,} | {s['aliases']:,} |")
    lines += ["", "## TransE (filtered link prediction, test split)", "", "| store | MRR | Hits@10 |", "|---|---:|---:|"]
    for name, m in summary["transe"].items():
        overall = m.get("overall", m)
        lines.append(f"| {name} | {overall.get('mrr', float('nan')):.3f} | {overall.get('hits@10', float('nan')):.3f} |")
    c = summary["corpus"]
    lines += ["", f"## Linked corpus: {c['examples']:,} T-REx sentences, {c['tokens']:,} wordpieces, "
              f"{c['entities']:,} linked mentions", "", "## Pretraining (last logged losses)", "",
              "| method | train loss | val loss |", "|---|---:|---:|"]
    for method, loss in summary["pretrain"].items():
        lines.append(f"| {method} | {loss.get('train', float('nan')):.3f} | {loss.get('val', float('nan')):.3f} |")
    lines += ["", "## Cloze probe (T-REx sample; details in [probe/report.md](probe/report.md))", "",
              "| model | mode | queries | P@1 | P@10 | MRR |", "|---|---|---:|---:|---:|---:|"]
    for name, modes in summary["probe"].items():
        for mode, m in modes.items():
            lines.append(f"| {name} | {mode} | {m['n']:,} | {100 * m['p@1']:.1f} | {100 * m['p@10']:.1f} | "
                         f"{100 * m['mrr']:.1f} |")
    if summary.get("stage_seconds"):
        lines += ["", "## Time per stage", "", "| stage | seconds |", "|---|---:|"]
        lines += [f"| {stage} | {seconds:.1f} |" for stage, seconds in summary["stage_seconds"].items()]
        lines.append(f"| **total** | **{summary['seconds']:.1f}** |")
    for png in sorted((folder / "probe").glob("*.png")):
        lines += ["", f"![{png.stem}](probe/{png.name})"]
    lines += ["", f"These are {args.steps} training steps of a 2-layer BERT on a few thousand sentences: the numbers "
              "show the path works, not what the methods can do (see `docs/results.md` for the comparison "
              "experiment)."]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "README.md"


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


def link_corpus(args: argparse.Namespace):
    from kept.data.build import CorpusOptions, build_linked_corpus

    src = args.data / "trex" / "sentences.jsonl.gz"
    print(f"\n[data build] linking {src} to the trex store", flush=True)
    corpus = build_linked_corpus(src, args.out / "corpus" / "trex", args.data / "vocab" / "bert-base-uncased-vocab.txt",
                                 args.out / "stores" / "trex", CorpusOptions(lang="en"), workers=args.workers,
                                 progress=not args.no_progress, overwrite=True)  # the demo owns its output folder
    m = corpus.meta
    print(f"[data build] {m['examples']:,} sentences, {m['tokens']:,} tokens, {m['entities']:,} linked mentions")
    return corpus


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


def build_stores(args: argparse.Namespace) -> dict:
    from kept.kg.build import BuildOptions, build_store
    from kept.kg.sources import ReaderOptions

    stores = args.out / "stores"
    summaries = {}
    for name, rel, opts in SAMPLES:
        src = args.data / rel
        if not src.exists():
            raise FileNotFoundError(f"shipped sample {src} is missing; run from the repository root or pass --data")
        print(f"[kg build] {name}: {src}", flush=True)
        options = BuildOptions(reader=ReaderOptions(**opts), overwrite=True, progress=not args.no_progress)
        report = build_store([(src, None)], stores / name, options)
        c = report.meta["counts"]
        summaries[name] = {"entities": c["entities"], "relations": c["relations"], "triples": c["triples"],
                           "aliases": c["aliases"], "attributes": c["attributes"], "seconds": round(report.seconds, 2)}
    print()
    header = f"{'store':<10} {'entities':>9} {'relations':>9} {'triples':>9} {'aliases':>8} {'attributes':>10} {'s':>6}"
    print(header)
    print("-" * len(header))
    for name, s in summaries.items():
        print(f"{name:<10} {s['entities']:>9,} {s['relations']:>9,} {s['triples']:>9,} {s['aliases']:>8,} "
              f"{s['attributes']:>10,} {s['seconds']:>6}")
    args.out.mkdir(parents=True, exist_ok=True)
    return summaries
