"""``kept demo --lang zh``: the Chinese end-to-end run, from the shipped Chinese KGs to probed models.

Steps: build one Chinese KG store from K-BERT's HowNet and Medical KGs (``kg_data/kbert``; keyed by
names, as the K-BERT reference reads them); train TransE on it (ERNIE-T's entity vectors); cut the first
``--zh-texts`` documents of the CLUECorpusSmall sample (``--zh-corpus``) into sentences and link them
to the store with jieba (``kept data build --lang zh``: Chinese BERT vocabulary, jieba word and
phrase units, entity spans); pretrain a small BERT briefly with every registered method
(:mod:`kept.methods`) on that corpus with the Chinese vocabulary and export each; probe every model
on the shipped Chinese cloze set (``kg_data/zh_probe``: single mode over the characters, multi mode
over each relation's objects); write ``OUT/report/README.md`` and print its path.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import re
import time
from pathlib import Path

from kept.methods import get_method

#: the K-BERT Chinese KGs merged into one store (paths relative to --data)
ZH_SOURCES = ("kbert/HowNet.spo.gz", "kbert/Medical.spo")
DEFAULT_CORPUS = Path("../shared/data/corpus/zh/uer/CLUECorpusSmall_sampled.txt.gz")
SENTENCE_END = re.compile(r"(?<=[。！？!?；;])")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options only the Chinese run reads (``kept demo --lang zh``)."""
    g = p.add_argument_group("Chinese run (--lang zh)")
    g.add_argument("--zh-corpus", type=Path, default=DEFAULT_CORPUS,
                   help=f"Chinese text, one document per line (.txt or .txt.gz; default: {DEFAULT_CORPUS})")
    g.add_argument("--zh-texts", type=int, default=1000,
                   help="documents of --zh-corpus used, from the top (default: 1000)")


def corpus_sentences(src: Path, out: Path, documents: int, max_chars: int = 120) -> int:
    """Write the sentences of the first ``documents`` lines of ``src`` to ``out`` (one per line, via a temp
    file): each line split after 。！？!?；; and cut into pieces of at most ``max_chars`` characters;
    pieces under 5 characters are dropped. Returns the number of sentences."""
    if not src.exists():
        raise FileNotFoundError(f"no Chinese corpus at {src} (pass --zh-corpus FILE: one document per line)")
    opener = gzip.open if src.suffix == ".gz" else open
    sentences: list[str] = []
    with opener(src, "rt", encoding="utf-8") as f:
        for _, line in zip(range(documents), f):
            for part in SENTENCE_END.split(line.strip()):
                sentences += [piece for k in range(0, len(part), max_chars)
                              if len(piece := part[k : k + max_chars].strip()) >= 5]
    if not sentences:
        raise ValueError(f"{src}: no sentences in its first {documents} lines")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
    tmp.replace(out)
    return len(sentences)


def run(args: argparse.Namespace) -> int:
    """The Chinese demo (``kept demo --lang zh``); returns 0."""
    start = time.perf_counter()
    store = build_store(args)
    transe = embed(args, store)
    corpus = link_corpus(args, store)
    losses = {method: pretrain(args, method, corpus, store) for method in args.methods}
    probe_metrics = probe(args, store)
    summary = {"store": store_summary(store), "transe": transe, "corpus": corpus.meta, "pretrain": losses,
               "probe": probe_metrics, "seconds": round(time.perf_counter() - start, 1)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    report = write_report(args, summary)
    print(f"\ndone in {summary['seconds']} s; summary in {args.out / 'summary.json'}")
    print(f"report: {report}")
    return 0


def build_store(args: argparse.Namespace) -> Path:
    """One store ``OUT/stores/zh`` from HowNet + Medical (``ZH_SOURCES`` under ``--data``)."""
    from kept.kg.build import BuildOptions
    from kept.kg.build import build_store as build

    sources = [args.data / rel for rel in ZH_SOURCES]
    for src in sources:
        if not src.exists():
            raise FileNotFoundError(f"shipped sample {src} is missing; run from the repository root or pass --data")
    out = args.out / "stores" / "zh"
    print(f"[kg build] zh: {', '.join(map(str, sources))}", flush=True)
    build([(src, None) for src in sources], out, BuildOptions(overwrite=True))
    return out


def store_summary(store: Path) -> dict:
    counts = json.loads((store / "meta.json").read_text(encoding="utf-8"))["counts"]
    return {k: counts[k] for k in ("entities", "relations", "triples", "aliases")}


def embed(args: argparse.Namespace, store: Path) -> dict:
    """TransE on the Chinese store, capped at one minute; its test metrics."""
    from kept.kg.transe.cli import main as embed_main

    print(f"\n[kg embed] TransE on {store}", flush=True)
    if embed_main([str(store), "--epochs", str(args.transe_epochs), "--max-minutes", "1", "--no-progress"]) != 0:
        raise RuntimeError(f"kept kg embed failed on {store}")
    metrics = json.loads((store / "embeddings" / "transe" / "metrics.json").read_text())
    return metrics.get("test", metrics)


def link_corpus(args: argparse.Namespace, store: Path):
    """The sentences of the corpus sample linked to the store with jieba (Chinese vocabulary)."""
    from kept.data.build import CorpusOptions, build_linked_corpus

    texts = args.out / "corpus" / "zh_sentences.txt"
    n = corpus_sentences(args.zh_corpus, texts, args.zh_texts)
    print(f"\n[data build] linking {n:,} sentences of {args.zh_corpus} to {store} (jieba)", flush=True)
    corpus = build_linked_corpus(texts, args.out / "corpus" / "zh", args.data / "vocab" / "bert-base-chinese-vocab.txt",
                                 store, CorpusOptions(lang="zh"), workers=args.workers, overwrite=True)
    m = corpus.meta
    print(f"[data build] {m['examples']:,} sentences, {m['tokens']:,} tokens, {m['entities']:,} linked mentions")
    return corpus


def pretrain(args: argparse.Namespace, method: str, corpus, store: Path) -> dict:
    """``kept pretrain --method METHOD`` on the demo budget with the Chinese vocabulary; last losses."""
    from kept.train.cli import main as pretrain_main

    print(f"\n[pretrain] {method}: {args.steps} steps (Chinese)", flush=True)
    run_dir = args.out / "runs" / method
    configs = [Path("experiments") / "demo" / "pretrain.yaml"]
    # the method's own demo settings (ERNIE-T's layer split), then its Chinese ones (K-BERT's character labels)
    configs += [p for p in (Path("experiments") / "demo" / f"{method}.yaml",
                            Path("experiments") / "demo" / "zh" / f"{method}.yaml") if p.exists()]
    argv = ["--method", method, *(a for c in configs for a in ("--config", str(c))), "--data.corpus", str(corpus.path),
             "--data.vocab", str(args.data / "vocab" / "bert-base-chinese-vocab.txt"),
             "--trainer.max_steps", str(args.steps), "--trainer.val_check_interval", str(max(args.steps // 2, 1)),
             "--trainer.default_root_dir", str(run_dir), "--trainer.logger.class_path",
             "pytorch_lightning.loggers.CSVLogger", "--trainer.logger.init_args.save_dir", str(run_dir),
             "--export", str(args.out / "models" / method)]
    argv += get_method(method).pretrain_args(store=store, steps=args.steps)
    pretrain_main(argv)
    metrics = sorted(run_dir.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)[-1]
    last: dict[str, float] = {}
    with open(metrics, newline="") as f:
        for row in csv.DictReader(f):
            for key, name in (("train/loss", "train"), ("val/loss", "val")):
                if row.get(key):
                    last[name] = float(row[key])
    return last


def probe(args: argparse.Namespace, store: Path) -> dict:
    """Every model on the Chinese cloze set (``--lang zh``, single and multi mode); macro metrics per model."""
    from kept.probe.cli import main as probe_main

    data, out = args.data / "zh_probe", args.out / "report" / "probe"
    print(f"\n[probe] {len(args.methods)} models on {data}", flush=True)
    argv = ["--data", str(data), "--store", str(store), "--lang", "zh", "--out", str(out), "--mode", "both",
            "--filter-objects", "--no-progress"]
    for method in args.methods:
        argv += ["--model", str(args.out / "models" / method), "--name", method]
    if probe_main(argv) != 0:
        raise RuntimeError("kept probe failed")
    models = json.loads((out / "metrics.json").read_text())["models"]
    return {name: {mode: m["macro"] for mode, m in info["modes"].items()} for name, info in models.items()}


def write_report(args: argparse.Namespace, summary: dict) -> Path:
    """``OUT/report/README.md``: the store, TransE, corpus, pretraining losses, probe tables and plots."""
    folder = args.out / "report"
    s, c, t = summary["store"], summary["corpus"], summary["transe"].get("overall", summary["transe"])
    lines = ["# kept demo report (Chinese)", "", f"Run time: {summary['seconds']} s, computed by `kept demo --lang zh` "
             f"from the K-BERT Chinese KGs (`kg_data/kbert`) and {args.zh_texts:,} documents of {args.zh_corpus}.", "",
             "| store | entities | relations | triples | TransE MRR | TransE Hits@10 |", "|---|---:|---:|---:|---:|---:|",
             f"| zh (HowNet + Medical) | {s['entities']:,} | {s['relations']:,} | {s['triples']:,} | "
             f"{t.get('mrr', float('nan')):.3f} | {t.get('hits@10', float('nan')):.3f} |", "",
             f"## Linked corpus: {c['examples']:,} sentences, {c['tokens']:,} characters/wordpieces, "
             f"{c['entities']:,} linked mentions (jieba)", "", "## Pretraining (last logged losses)", "",
             "| method | train loss | val loss |", "|---|---:|---:|"]
    for method, loss in summary["pretrain"].items():
        lines.append(f"| {method} | {loss.get('train', float('nan')):.3f} | {loss.get('val', float('nan')):.3f} |")
    lines += ["", "## Cloze probe (kg_data/zh_probe; details in [probe/report.md](probe/report.md))", "",
              "| model | mode | queries | P@1 | P@10 | MRR |", "|---|---|---:|---:|---:|---:|"]
    for name, modes in summary["probe"].items():
        for mode, m in modes.items():
            lines.append(f"| {name} | {mode} | {m['n']:,} | {100 * m['p@1']:.1f} | {100 * m['p@10']:.1f} | "
                         f"{100 * m['mrr']:.1f} |")
    lines += [f"\n![{png.stem}](probe/{png.name})" for png in sorted((folder / "probe").glob("*.png"))]
    lines += ["", f"These are {args.steps} training steps of a 2-layer BERT on a few thousand sentences: the numbers "
              "show that the Chinese path works, not what the methods can do."]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "README.md"
