#!/usr/bin/env python
"""What knowledge buys: every pretraining method at an equal budget, probed on T-REx facts.

    .venv/bin/python experiments/compare_methods/run.py            # default budget (see docs/results.md for its run time)
    .venv/bin/python experiments/compare_methods/run.py --steps 3000 --seeds 0 1 2 3 4   # a larger budget

1. Data: the LAMA T-REx facts of ``--lama`` (default ``../shared/data/lama``), the first
   ``--per-relation`` facts of each relation, through ``kg_data/recipes/make_trex_sample.py``:
   N-Triples facts, their evidence sentences (real English Wikipedia), a LAMA probe set.
2. Seen / unseen: a seeded ``--seen-fraction`` of the facts is *seen*: their sentences are the
   training corpus. The other facts' sentences are held out. The KG store holds **all** facts,
   so an unseen fact is known to the KG but never read in text: what a method gains there comes
   from the knowledge it injects.
3. The KG: the store built from all facts, TransE on it (ERNIE-T's entity vectors, the linker's
   coherence); the training sentences linked to it.
4. Training: small BERTs from scratch, the same steps, batch and sequence length for every method
   (``experiments/compare_methods/budget.yaml``), each method with each seed.
5. Probing: every model on the probe set (template mode, multi-wordpiece objects ranked among
   the relation's objects), with the method's knowledge at probe time; P@1, P@10 and MRR,
   seen and unseen facts separately. The report (``OUT/report.md``, ``OUT/results.json``,
   plots) gives mean ± standard deviation over seeds per method.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

from kept.methods import METHODS, get_method
from kept.probe.splits import clean_split

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"
WD, WDT = "http://www.wikidata.org/entity/", "http://www.wikidata.org/prop/direct/"


def log(message: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {message}", flush=True)


def make_data(args: argparse.Namespace) -> dict:
    """The T-REx sample, the seen/unseen split of its facts and the training sentences."""
    sys.path.insert(0, str(ROOT / "kg_data" / "recipes"))
    import make_trex_sample

    data = args.out / "data"
    if not (data / "sentences.jsonl.gz").exists():
        log(f"T-REx sample: first {args.per_relation} facts per relation of {args.lama}")
        if make_trex_sample.main(["--lama", str(args.lama), "--out", str(data),
                                  "--per-relation", str(args.per_relation)]) != 0:
            raise SystemExit("making the T-REx sample failed")
    with gzip.open(data / "sentences.jsonl.gz", "rt", encoding="utf-8") as f:
        sentences = [json.loads(line) for line in f]
    facts = sorted({s["fact"] for s in sentences})
    rng = np.random.default_rng(args.split_seed)
    drawn = {facts[i] for i in np.flatnonzero(rng.random(len(facts)) < args.seen_fraction)}
    # unseen = no training sentence names its subject and its object (kept.probe.splits)
    seen, moved = clean_split(sentences_by_fact(sentences), fact_names(data / "probe", sentences), drawn)
    train = [s for s in sentences if s["fact"] in seen]
    with gzip.open(data / "train_sentences.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in train)
    (data / "seen_facts.txt").write_text("".join(f"{uuid}\n" for uuid in sorted(seen)))
    # the seen facts as N-Triples (labels kept): the store `kept probe --seen-kg` splits by
    seen_triples = {(s["sub_uri"], s["predicate"], s["obj_uri"]) for s in train}
    with gzip.open(data / "trex_facts.nt.gz", "rt", encoding="utf-8") as src, \
            gzip.open(data / "seen_facts.nt.gz", "wt", encoding="utf-8") as dst:
        for line in src:
            parts = line.split(" ", 3)
            if parts[1].startswith(f"<{WDT}"):
                key = (parts[0][len(WD) + 1:-1], parts[1][len(WDT) + 1:-1], parts[2][len(WD) + 1:-1])
                if key not in seen_triples:
                    continue
            dst.write(line)
    (data / "moved_to_seen.txt").write_text("".join(f"{uuid}\n" for uuid in moved))
    log(f"split: {len(drawn)} facts drawn seen, {len(moved)} more moved to seen (a training sentence names "
        f"their subject and object), {len(facts) - len(seen)} unseen")
    return {"facts_with_sentences": len(facts), "seen_facts": len(seen), "drawn_seen": len(drawn),
            "moved_to_seen": len(moved), "sentences": len(sentences), "training_sentences": len(train)}


def sentences_by_fact(sentences: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in sentences:
        out.setdefault(s["fact"], []).append(s["text"])
    return out


def fact_names(probe: Path, sentences: list[dict]) -> dict[str, tuple[set[str], set[str]]]:
    """fact uuid -> (subject names, object names): the probe set's labels and the evidence surface forms."""
    names: dict[str, tuple[set[str], set[str]]] = {}
    for path in sorted(probe.glob("P*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                fact = json.loads(line)
                names[fact["uuid"]] = ({fact["sub_label"]}, {fact["obj_label"]})
    for s in sentences:
        subjects, objects = names.setdefault(s["fact"], (set(), set()))
        subjects.add(s["sub_surface"])
        objects.add(s["obj_surface"])
    return names


def make_kg(args: argparse.Namespace) -> dict:
    """The store of all facts, TransE on it, and the linked training corpus."""
    from kept.cli import main as kept_main
    from kept.data.build import CorpusOptions, build_linked_corpus
    from kept.kg.build import BuildOptions, build_store
    from kept.kg.sources import ReaderOptions

    store = args.out / "store"
    if not (store / "meta.json").exists():
        log("building the KG store of all sampled facts")
        build_store([(args.out / "data" / "trex_facts.nt.gz", None)], store,
                    BuildOptions(reader=ReaderOptions(languages=("en",)), progress=False))
    if not (args.out / "seen_store" / "meta.json").exists():
        build_store([(args.out / "data" / "seen_facts.nt.gz", None)], args.out / "seen_store",
                    BuildOptions(reader=ReaderOptions(languages=("en",)), progress=False))
    if not (store / "embeddings" / "transe" / "entity.npy").exists():
        log(f"TransE ({args.transe_minutes} min at most)")
        if kept_main(["kg", "embed", str(store), "--max-minutes", str(args.transe_minutes), "--no-progress"]) != 0:
            raise SystemExit("TransE failed")
    log("linking the training sentences")
    corpus = build_linked_corpus(args.out / "data" / "train_sentences.jsonl.gz", args.out / "corpus", VOCAB,
                                 store, CorpusOptions(lang="en"), workers=args.workers, progress=False)
    return {"store": json.loads((store / "meta.json").read_text())["counts"], "corpus": corpus.meta,
            "transe": json.loads((store / "embeddings" / "transe" / "metrics.json").read_text()).get("test")}


def train(args: argparse.Namespace, method: str, seed: int) -> Path:
    """Pretrain one method with one seed at the experiment's budget; returns the export directory."""
    from kept.train.cli import main as pretrain_main

    model = args.out / "models" / f"{method}-seed{seed}"
    if (model / "kept.json").exists():
        return model
    run_dir = args.out / "runs" / f"{method}-seed{seed}"
    argv = ["--method", method, "--config", str(HERE / "budget.yaml"),
            "--data.corpus", str(args.out / "corpus"), "--data.vocab", str(VOCAB),
            "--seed_everything", str(seed), "--model.init_args.seed", str(seed), "--data.init_args.seed", str(seed),
            "--trainer.max_steps", str(args.steps), "--trainer.default_root_dir", str(run_dir),
            "--trainer.logger.class_path", "pytorch_lightning.loggers.CSVLogger",
            "--trainer.logger.init_args.save_dir", str(run_dir), "--export", str(model)]
    overlay = HERE / f"{method}.yaml"  # a method's own settings at this budget (ERNIE-T's layer split)
    if overlay.exists():
        argv[4:4] = ["--config", str(overlay)]
    argv += get_method(method).pretrain_args(store=args.out / "store", steps=args.steps)
    start = time.perf_counter()
    pretrain_main(argv)
    log(f"{method} seed {seed}: {args.steps} steps in {time.perf_counter() - start:.0f} s")
    return model


def probe(args: argparse.Namespace, models: dict[str, list[Path]]) -> dict:
    """Probe every model (seen/unseen split); mean ± std over seeds per method, report and plots."""
    from kept.probe.cli import main as probe_main

    out = args.out / "probe"
    if not (out / "metrics.json").exists():
        argv = ["--data", str(args.out / "data" / "probe"), "--kg", str(args.out / "store"),
                "--seen-kg", str(args.out / "seen_store"), "--mode", "both", "--out", str(out), "--no-progress"]
        if args.probe_facts:
            argv += ["--max-facts", str(args.probe_facts)]
        for dirs in models.values():
            for d in dirs:
                argv += ["--model", str(d), "--name", d.name]
        log(f"probing {sum(map(len, models.values()))} models")
        if probe_main(argv) != 0:
            raise SystemExit("kept probe failed")
    per_model = json.loads((out / "metrics.json").read_text())["models"]
    table: dict = {}
    for method, dirs in models.items():
        for mode in ("single", "multi"):
            for split in ("seen", "unseen", "all"):
                for metric in ("p@1", "p@10", "mrr"):
                    values = []
                    for d in dirs:
                        modes = per_model[d.name]["modes"].get(mode, {})
                        macro = modes.get("macro") if split == "all" else modes.get(split, {}).get("macro")
                        if macro and macro["n"]:
                            values.append(100 * macro[metric])
                    if values:
                        table.setdefault(method, {}).setdefault(mode, {}).setdefault(split, {})[metric] = {
                            "mean": round(float(np.mean(values)), 2), "std": round(float(np.std(values, ddof=1)), 2)
                            if len(values) > 1 else 0.0, "runs": len(values)}
    write_report(args, table)
    return table


def write_report(args: argparse.Namespace, table: dict) -> None:
    """``OUT/report.md`` and ``OUT/compare_<mode>.png``: mean ± std over seeds, seen vs unseen facts."""
    from matplotlib.figure import Figure

    lines = ["| method | mode | facts | P@1 | P@10 | MRR |", "|---|---|---|---:|---:|---:|"]
    for method, modes in table.items():
        for mode, splits in modes.items():
            for split in ("seen", "unseen", "all"):
                m = splits.get(split)
                if m:
                    cells = [f"{m[k]['mean']:.1f} ± {m[k]['std']:.1f}" for k in ("p@1", "p@10", "mrr")]
                    lines.append(f"| {method} | {mode} | {split} | " + " | ".join(cells) + " |")
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    for mode in ("single", "multi"):
        methods = [m for m in table if mode in table[m]]
        if not methods:
            continue
        fig = Figure(figsize=(8, 4))
        ax = fig.add_subplot()
        width = 0.38
        for j, split in enumerate(("seen", "unseen")):
            means = [table[m][mode].get(split, {}).get("mrr", {}).get("mean", 0.0) for m in methods]
            stds = [table[m][mode].get(split, {}).get("mrr", {}).get("std", 0.0) for m in methods]
            ax.bar(np.arange(len(methods)) + (j - 0.5) * width, means, width, yerr=stds, capsize=3,
                   label=f"{split} facts")
        ax.set_xticks(np.arange(len(methods)), methods)
        ax.set_ylabel("MRR (%)")
        ax.set_title(f"T-REx cloze, {mode}-wordpiece mode: mean ± std over seeds")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out / f"compare_{mode}.png", dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lama", type=Path, default=ROOT.parent / "shared" / "data" / "lama",
                   help="LAMA data directory (relations.jsonl + TREx/); default ../shared/data/lama")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "compare_methods", help="work and report folder")
    p.add_argument("--per-relation", type=int, default=300, help="facts per T-REx relation (default 300)")
    p.add_argument("--seen-fraction", type=float, default=0.8, help="share of facts whose sentences are trained on")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the seen/unseen split (default 0)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=500, help="optimizer steps per run (default 500)")
    p.add_argument("--transe-minutes", type=float, default=2.0, help="TransE training cap (default 2)")
    p.add_argument("--workers", type=int, default=None, help="linking processes (default: all cores)")
    p.add_argument("--probe-facts", type=int, default=0, help="probe the first N facts per relation (0: all)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    info = {"data": make_data(args)}
    info.update(make_kg(args))
    models = {m: [train(args, m, s) for s in args.seeds] for m in args.methods}
    info["probe"] = probe(args, models)
    info["seconds"] = round(time.perf_counter() - start)
    info["command"] = " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])
    (args.out / "results.json").write_text(json.dumps(info, indent=2) + "\n")
    log(f"done in {info['seconds']} s; report: {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
