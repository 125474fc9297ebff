#!/usr/bin/env python
"""The knowledge study: every registered method from the same base model, probed on facts seen and not
seen in training, under every knowledge condition it supports, with intervals and costs.

    .venv/bin/python experiments/compare_methods/run.py                                   # the CPU budget
    .venv/bin/python experiments/compare_methods/run.py --budget experiments/compare_methods/budget-gpu.yaml

1. Data (``study_data.py``): the first ``per_relation`` LAMA T-REx facts of each relation with their
   Wikipedia evidence sentences; a seeded ``seen_fraction`` of the facts is *seen* (their sentences,
   cropped around subject and object, are the training text), and facts that a training sentence names
   (subject and object) move to the seen side, so an unseen fact was never read. The KG holds all facts.
2. KG: the store of all facts, TransE on it (ERNIE-T's vectors, the linker's coherence), the training
   sentences linked to it; a compact WordPiece vocabulary (``vocab_size``) trained on the texts and labels.
3. The shared base model: ``mlm`` on WikiText-2 (sentences naming a sampled fact's subject and object
   dropped) for ``base_steps``; or ``--pretrained DIR`` (a Hugging Face BERT with its vocabulary).
4. Training: every method of ``kept.methods`` x every seed continues from the base, with the budget's
   model/data/trainer settings (``pretrain`` section) plus the method's overlay ``<method>.yaml`` here.
   Each run is a subprocess: wall time and peak memory are its own.
5. Probing: ``kept probe`` (multi-wordpiece mode, template queries) per knowledge condition: ``none``
   for methods that read no KG, and each condition a method supports (``full``, ``leave-one-out``, ``off``).
6. ``OUT/results.json``, ``OUT/report.md``, ``OUT/study_multi.png`` (``study_analysis.py``): per method x
   condition x split the mean ± std over seeds and the paired difference to ``mlm`` with a 95 %
   bootstrap interval over facts; pre-computation seconds, step time relative to ``mlm``, peak memory.

Finished stages are reused (delete ``OUT/<stage>`` to redo one); flags override the budget file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import study_analysis as analysis  # noqa: E402
import study_data as data  # noqa: E402

from kept.methods import BASELINE, METHODS, get_method  # noqa: E402

ROOT = HERE.parents[1]
VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"
#: runner settings and their defaults (a budget file's ``experiment`` section and the flags override them)
DEFAULTS = {"per_relation": 30, "seen_fraction": 0.8, "split_seed": 0, "seeds": [0, 1, 2], "steps": 400,
            "base_steps": 600, "vocab_size": 4000, "crop_words": 4, "transe_minutes": 1.0, "probe_facts": 0,
            "jobs": 1}
log = data.log


def make_kg(args: argparse.Namespace, costs: dict) -> dict:
    """The store of all facts and of the seen facts, TransE, the vocabulary and the linked training corpus."""
    from kept.data.build import CorpusOptions, build_linked_corpus
    from kept.kg.build import BuildOptions, build_store
    from kept.kg.sources import ReaderOptions
    from kept.kg.transe.cli import main as embed_main

    store = args.out / "store"
    for out, src in ((store, "trex_facts.nt.gz"), (args.out / "seen_store", "seen_facts.nt.gz")):
        if not (out / "meta.json").exists():
            build_store([(args.out / "data" / src, None)], out,
                        BuildOptions(reader=ReaderOptions(languages=("en",)), progress=False))
    if not (store / "embeddings" / "transe" / "entity.npy").exists():
        start = time.perf_counter()
        if embed_main([str(store), "--max-minutes", str(args.transe_minutes), "--no-progress"]) != 0:
            raise SystemExit("TransE failed")
        costs["transe_s"] = round(time.perf_counter() - start, 1)
    sample = data.read_jsonl(args.out / "data" / "sentences.jsonl.gz")
    wiki_txt = args.out / "wiki_text" / "wiki.txt"
    if not wiki_txt.exists():
        wiki_txt.parent.mkdir(parents=True, exist_ok=True)
        wiki_txt.write_text("\n".join(data.wiki_sentences(data.fact_names(args.out / "data" / "probe", sample)))
                            + "\n", encoding="utf-8")
    if args.pretrained:
        args.vocab = args.pretrained / "vocab.txt"
    elif args.vocab_size:
        texts = [s["text"] for s in data.read_jsonl(args.out / "data" / "train_sentences.jsonl.gz")]
        args.vocab = data.train_vocab(store, wiki_txt, texts, args.vocab_size, args.out / "vocab")
    start = time.perf_counter()
    corpus = build_linked_corpus(args.out / "data" / "train_sentences.jsonl.gz", args.out / "corpus", args.vocab,
                                 store, CorpusOptions(lang="en"), workers=args.workers, progress=False)
    costs.setdefault("linking_s", round(time.perf_counter() - start, 1))
    return {"store": json.loads((store / "meta.json").read_text())["counts"], "corpus": corpus.meta,
            "transe": json.loads((store / "embeddings" / "transe" / "metrics.json").read_text()).get("test")}


def threads_per_job(jobs: int) -> int:
    """CPU threads each of ``jobs`` parallel runs gets (all cores split evenly, at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(jobs, 1))


def kept_command(command: str, argv: list[str], log_file: Path, threads: int) -> dict:
    """``kept COMMAND ARGV`` in a subprocess with ``threads`` CPU threads: ``{"seconds", "peak_rss_mb"}``
    of that process alone."""
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(log_file, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "kept.cli", command, *argv], stdout=out,
                                stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"kept {command} failed ({log_file})")
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def make_base(args: argparse.Namespace, costs: dict) -> Path | None:
    """The shared base model (``mlm`` on WikiText-2 for ``base_steps``), ``--pretrained``, or None."""
    from kept.data.build import CorpusOptions, build_linked_corpus

    if args.pretrained or not args.base_steps:
        return args.pretrained
    model = args.out / "models" / "base"
    if not (model / "config.json").exists():
        corpus = build_linked_corpus(args.out / "wiki_text" / "wiki.txt", args.out / "wiki", args.vocab, None,
                                     CorpusOptions(lang="en", phrases=None), workers=args.workers, progress=False)
        (args.out / "runs").mkdir(parents=True, exist_ok=True)
        run = kept_command("pretrain", ["--method", BASELINE, "--config", str(args.pretrain_config), "--data.corpus", str(corpus.path),
                        "--data.vocab", str(args.vocab), "--seed_everything", "0",
                        "--data.init_args.fact_mask_prob", "0",          # WikiText-2 is linked to no KG
                        "--trainer.max_steps", str(args.base_steps), "--trainer.logger", "false",
                        "--trainer.enable_checkpointing", "false",
                        "--trainer.default_root_dir", str(args.out / "runs" / "base"), "--export", str(model)],
                           args.out / "runs" / "base.log", threads_per_job(1))
        costs["base_s"] = run["seconds"]
        log(f"base model: {args.base_steps} steps on WikiText-2 in {run['seconds']:.0f} s")
    return model


def train(args: argparse.Namespace, method: str, seed: int, base: Path | None) -> tuple[Path, dict | None]:
    """One method, one seed, from the base; ``(export directory, its run's cost or None when reused)``."""
    model = args.out / "models" / analysis.model_name(method, seed)
    if (model / "kept.json").exists():
        return model, None
    run_dir = args.out / "runs" / analysis.model_name(method, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = ["--method", method, "--config", str(args.pretrain_config)]
    overlay = HERE / f"{method}.yaml"  # a method's own settings at this budget (ERNIE-T's layer split)
    if overlay.exists():
        argv += ["--config", str(overlay)]
    argv += ["--data.corpus", str(args.out / "corpus"), "--data.vocab", str(args.vocab),
             "--seed_everything", str(seed), "--model.init_args.seed", str(seed), "--data.init_args.seed", str(seed),
             "--trainer.max_steps", str(args.steps), "--trainer.default_root_dir", str(run_dir),
             "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--export", str(model)]
    if base is not None:  # every method continues from the same base checkpoint
        argv += ["--model.init_args.pretrained", str(base)]
    argv += get_method(method).pretrain_args(store=args.out / "store", steps=args.steps)
    run = kept_command("pretrain", argv, run_dir / "train.log", threads_per_job(args.jobs))
    log(f"{method} seed {seed}: {args.steps} steps in {run['seconds']:.0f} s, peak {run['peak_rss_mb']} MB")
    return model, run


def probe(args: argparse.Namespace, models: dict[str, list[Path]], seeds: list[int]) -> tuple[dict, dict]:
    """``kept probe`` per knowledge condition (``--jobs`` at a time); ``(condition -> probe folder,
    method -> condition -> seeds)``."""
    runs: dict[str, dict[str, list[int]]] = {}
    for method in models:
        for condition in get_method(method).knowledge_conditions or ("none",):
            runs.setdefault(method, {})[condition] = seeds
    folders, commands = {}, []
    for condition in dict.fromkeys(c for conds in runs.values() for c in conds):
        out = folders[condition] = args.out / "probe" / condition
        if (out / "metrics.json").exists():
            continue
        argv = ["--data", str(args.out / "data" / "probe"), "--store", str(args.out / "store"), "--seen-store",
                str(args.out / "seen_store"), "--mode", "multi", "--out", str(out), "--no-progress",
                "--knowledge", "full" if condition == "none" else condition]
        if args.probe_facts:
            argv += ["--max-facts", str(args.probe_facts)]
        for method, conditions in runs.items():
            if condition in conditions:
                for d in models[method]:
                    argv += ["--model", str(d), "--name", d.name]
        commands.append((condition, argv))
    (args.out / "probe").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        log(f"probing, knowledge {', '.join(c for c, _ in commands) or '(all reused)'}")
        list(pool.map(lambda c: kept_command("probe", c[1], args.out / "probe" / f"{c[0]}.log",
                                             threads_per_job(args.jobs)), commands))
    return folders, runs


def cost_table(costs: dict, runs: dict[str, list[dict]], steps: int) -> dict:
    """Per method: mean seconds per step (wall time of the run / steps), its ratio to mlm, peak memory."""
    out = {"precompute_s": {k: v for k, v in costs.items() if k.endswith("_s")}, "methods": {}}
    for method, rs in runs.items():
        if rs:
            step = sum(r["seconds"] for r in rs) / len(rs) / steps
            out["methods"][method] = {"step_s": round(step, 3), "peak_rss_mb": max(r["peak_rss_mb"] for r in rs)}
    base = out["methods"].get(BASELINE, {}).get("step_s")
    for m in out["methods"].values():
        m["step_ratio_to_mlm"] = round(m["step_s"] / base, 2) if base else None
    return out


def options(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=Path, default=HERE / "budget.yaml",
                   help="budget file: an 'experiment' section (the settings below) and a 'pretrain' section "
                        "(LightningCLI model/data/trainer config for every run); default budget.yaml (CPU)")
    p.add_argument("--lama", type=Path, default=data.SHARED / "lama", help="LAMA data (relations.jsonl + TREx/)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "compare_methods", help="work and report folder")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--pretrained", type=Path, help="a Hugging Face BERT folder as the shared base (its vocab.txt)")
    p.add_argument("--workers", type=int, default=None, help="linking processes (default: all cores)")
    for key, value in DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, list):
            p.add_argument(flag, type=int, nargs="+", default=None, help=f"(budget default: {value})")
        else:
            p.add_argument(flag, type=type(value), default=None, help=f"(budget default: {value})")
    args = p.parse_args(argv)
    budget = yaml.safe_load(args.budget.read_text()) or {}
    for key, value in {**DEFAULTS, **budget.get("experiment", {})}.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.out.mkdir(parents=True, exist_ok=True)
    args.pretrain_config = args.out / "pretrain.yaml"
    args.pretrain_config.write_text(yaml.safe_dump(budget.get("pretrain", {}), sort_keys=False))
    args.vocab = VOCAB
    args.budget_text = budget
    return args


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    start, costs = time.perf_counter(), {}
    info = {"data": data.make_data(args)}
    info.update(make_kg(args, costs))
    base = make_base(args, costs)
    todo = [(method, seed) for method in dict.fromkeys([BASELINE, *args.methods]) for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:   # each run a subprocess with its share of the cores
        trained = dict(zip(todo, pool.map(lambda job: train(args, *job, base), todo)))
    models = {m: [trained[m, s][0] for s in args.seeds] for m, _ in todo}
    runs = {m: [trained[m, s][1] for s in args.seeds if trained[m, s][1] is not None] for m, _ in todo}
    folders, conditions = probe(args, models, args.seeds)
    table = analysis.analyse(folders, conditions)
    results = {"command": " ".join(["experiments/compare_methods/run.py", *(argv if argv is not None else sys.argv[1:])]),
               "seconds": round(time.perf_counter() - start), "budget": args.budget_text, "setup": info,
               **table, "costs": cost_table(costs, runs, args.steps)}
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    report = ["# The knowledge study", "", f"`{results['command']}`: {results['seconds']} s.", "",
              analysis.markdown(table), "", "Costs: " + json.dumps(results["costs"]), "",
              "![P@1 of seen and unseen facts](study_multi.png)"]
    (args.out / "report.md").write_text("\n".join(report) + "\n")
    analysis.plot(table, args.out)
    log(f"done in {results['seconds']} s: {args.out / 'results.json'}, {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
