"""``kept demo``: the end-to-end run on the shipped sample data (``kg_data/``).

Steps: build a KG store from every shipped sample; train TransE on the T-REx and
Medical stores (the linker uses the T-REx vectors for coherence); link the T-REx
sentences to the T-REx store (a linked corpus); pretrain a small BERT briefly with ``mlm`` and
``ernie-baidu`` and export both in Hugging Face format. Each later stage of the
pipeline adds a step here, so that one command shows the whole path working.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

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
                       description="Run kept end to end on the shipped sample data: build the KG stores "
                                   "(later stages add TransE, linking, pretraining and probing).")
    p.add_argument("--data", type=Path, default=Path("kg_data"), help="shipped data folder (default: kg_data)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)")
    p.add_argument("--steps", type=int, default=40, help="pretraining steps per method (default: 40)")
    p.add_argument("--transe-epochs", type=int, default=50, help="TransE epochs per store (default: 50)")
    p.add_argument("--workers", type=int, default=None, help="corpus-linking processes (default: all cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    summaries = build_stores(args)
    transe = {name: embed(args, name) for name in ("trex", "medical")}
    corpus = link_corpus(args)
    losses = {method: pretrain(args, method, corpus) for method in ("mlm", "ernie-baidu")}
    print()
    for method, loss in losses.items():
        print(f"[pretrain] {method:<12} final train loss {loss['train']:.3f}  val loss {loss['val']:.3f}  "
              f"-> {args.out / 'models' / method}")
    summary = {"stores": summaries, "transe": transe, "corpus": corpus.meta, "pretrain": losses,
               "seconds": round(time.perf_counter() - start, 1)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(f"\ndone in {summary['seconds']} s; summary in {args.out / 'summary.json'}")
    return 0


def embed(args: argparse.Namespace, name: str) -> dict:
    """TransE with the default configuration, capped at a demo budget; returns the test metrics."""
    from kept.cli import main as kept_main

    store = args.out / "stores" / name
    print(f"\n[kg embed] TransE on {store}", flush=True)
    if kept_main(["kg", "embed", str(store), "--epochs", str(args.transe_epochs), "--max-minutes", "1",
                  "--no-progress"]) != 0:
        raise RuntimeError(f"kept kg embed failed on {store}")
    metrics = json.loads((store / "embeddings" / "transe" / "metrics.json").read_text())
    return metrics.get("test", metrics)


def link_corpus(args: argparse.Namespace):
    from kept.data.build import CorpusOptions, build_linked_corpus

    src = args.data / "trex" / "sentences.jsonl.gz"
    print(f"\n[data build] linking {src} to the trex store", flush=True)
    corpus = build_linked_corpus(src, args.out / "corpus" / "trex", args.data / "vocab" / "bert-base-uncased-vocab.txt",
                                 args.out / "stores" / "trex", CorpusOptions(lang="en"), workers=args.workers)
    m = corpus.meta
    print(f"[data build] {m['examples']:,} sentences, {m['tokens']:,} tokens, {m['entities']:,} linked mentions")
    return corpus


def pretrain(args: argparse.Namespace, method: str, corpus) -> dict:
    from kept.train.cli import main as pretrain_main

    print(f"\n[pretrain] {method}: {args.steps} steps", flush=True)
    run_dir = args.out / "runs" / method
    argv = ["--method", method, "--config", str(Path("experiments") / "demo" / "pretrain.yaml"),
            "--data.corpus", str(corpus.path), "--data.vocab", str(args.data / "vocab" / "bert-base-uncased-vocab.txt"),
            "--trainer.max_steps", str(args.steps), "--trainer.val_check_interval", str(max(args.steps // 2, 1)),
            "--trainer.default_root_dir", str(run_dir), "--trainer.logger.class_path",
            "pytorch_lightning.loggers.CSVLogger", "--trainer.logger.init_args.save_dir", str(run_dir),
            "--export", str(args.out / "models" / method)]
    if method == "ernie-baidu":  # the three stages within the demo's budget
        argv += ["--trainer.callbacks.init_args.boundaries",
                 json.dumps({"phrase": args.steps // 3, "entity": 2 * args.steps // 3})]
    pretrain_main(argv)
    return _last_losses(run_dir)


def _last_losses(run_dir: Path) -> dict:
    """Last logged train and validation loss of a CSVLogger run."""
    import csv

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
        options = BuildOptions(reader=ReaderOptions(**opts), overwrite=True)
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
