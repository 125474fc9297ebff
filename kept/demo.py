"""``kept demo``: the end-to-end run on the shipped sample data (``kg_data/``).

Steps: build a KG store from every shipped sample; train TransE on the T-REx and
Medical stores (the linker uses the T-REx vectors for coherence; ERNIE-T uses them as
entity vectors); link the T-REx sentences to the T-REx store (a linked corpus); pretrain a
small BERT briefly with every registered method (:mod:`kept.methods`) and export each; probe every model on the shipped T-REx cloze set with the
method's knowledge; write a report folder (Markdown + plots) and print its path.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kept.demo_common import embed, pretrain, probe_models, stage_table, timed
from kept.flags import add_no_progress, quiet_progress
from kept.methods import METHODS

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


def probe(args: argparse.Namespace) -> dict:
    """Cloze-probe every trained model on the shipped T-REx probe set; macro metrics per model."""
    return probe_models(args, args.data / "trex" / "probe", args.out / "stores" / "trex")


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
