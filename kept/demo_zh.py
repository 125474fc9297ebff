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
import gzip
import json
import re
import time
from pathlib import Path

from kept.demo_common import embed, pretrain, probe_models, stage_table, timed
from kept.flags import quiet_progress

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
    quiet_progress(args.no_progress)
    times: dict[str, float] = {}
    store = timed(times, "kg build", build_store, args)
    transe = timed(times, "kg embed zh", embed, args, store)
    corpus = timed(times, "data build", link_corpus, args, store)
    vocab = args.data / "vocab" / "bert-base-chinese-vocab.txt"
    losses = {method: timed(times, f"pretrain {method}", pretrain, args, method, corpus, store, vocab, "zh")
              for method in args.methods}
    probe_metrics = timed(times, "probe", probe, args, store)
    summary = {"store": store_summary(store), "transe": transe, "corpus": corpus.meta, "pretrain": losses,
               "probe": probe_metrics, "stage_seconds": times, "seconds": round(time.perf_counter() - start, 1)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    report = write_report(args, summary)
    print()
    print(stage_table(times, summary["seconds"]))
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
    build([(src, None) for src in sources], out, BuildOptions(overwrite=True, progress=not args.no_progress))
    return out


def store_summary(store: Path) -> dict:
    counts = json.loads((store / "meta.json").read_text(encoding="utf-8"))["counts"]
    return {k: counts[k] for k in ("entities", "relations", "triples", "aliases")}


def link_corpus(args: argparse.Namespace, store: Path):
    """The sentences of the corpus sample linked to the store with jieba (Chinese vocabulary)."""
    from kept.data.build import CorpusOptions, build_linked_corpus

    texts = args.out / "corpus" / "zh_sentences.txt"
    n = corpus_sentences(args.zh_corpus, texts, args.zh_texts)
    print(f"\n[data build] linking {n:,} sentences of {args.zh_corpus} to {store} (jieba)", flush=True)
    corpus = build_linked_corpus(texts, args.out / "corpus" / "zh", args.data / "vocab" / "bert-base-chinese-vocab.txt",
                                 store, CorpusOptions(lang="zh"), workers=args.workers,
                                 progress=not args.no_progress, overwrite=True)
    m = corpus.meta
    print(f"[data build] {m['examples']:,} sentences, {m['tokens']:,} tokens, {m['entities']:,} linked mentions")
    return corpus


def probe(args: argparse.Namespace, store: Path) -> dict:
    """Every model on the Chinese cloze set (``--lang zh``, single and multi mode); macro metrics per model."""
    return probe_models(args, args.data / "zh_probe", store, ("--lang", "zh", "--filter-objects"))


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
