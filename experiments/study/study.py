#!/usr/bin/env python
"""Regime search for the knowledge study: train mlm / kbert (optionally from a shared base model) and
probe seen / unseen facts at several steps of the run (learning curves), K-BERT with its KG ``full``
and ``off`` at probe time. Data from ``experiments/study/prepare.py``.

    PYTHONPATH=. python experiments/study/study.py train --data runs/study/d30 --method mlm \\
        --steps 1500 --eval-at 250 500 1000 1500 --out runs/study/mlm-a
    PYTHONPATH=. python experiments/study/study.py base --data runs/study/d30 --steps 2000 --out runs/study/base
    PYTHONPATH=. python experiments/study/study.py diagnose --data runs/study/d30

``train`` writes OUT/curve.json: per evaluated step, multi-mode macro P@1 (and MRR) on seen and unseen
facts (kbert: ``full`` and ``off``), the majority-object baseline and the wall time of training.
Learning-curve points inside one run share its linear LR schedule (P@1 at step s of an N-step run).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from kept.methods import BASELINE, METHODS, get_method


def log(msg: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- probing ------------------------------------------------------------------------------------
class Prober:
    """Multi-mode template probing of the sample's probe set, split seen / unseen."""

    def __init__(self, data: Path, queries: str = "template"):
        from kept.kg.linking import EntityLinker, LinkerConfig
        from kept.kg.store import open_store
        from kept.probe.lama import load_probe_set

        self.data, self.queries = data, queries
        self.probe_set = load_probe_set(data / "data" / "probe")
        self.store = open_store(data / "store")
        self.seen_store = open_store(data / "seen_store")
        self.linker = EntityLinker.from_store(self.store, LinkerConfig(language="en"))
        import gzip

        with gzip.open(data / "data" / "train_sentences.jsonl.gz", "rt", encoding="utf-8") as f:
            self.seen = {(x["sub_uri"], x["predicate"], x["obj_uri"]) for x in map(json.loads, f)}

    def majority(self) -> dict:
        """Macro P@1 of always answering the relation's most frequent object, on seen / unseen facts."""
        out = {}
        for split in ("seen", "unseen", "all"):
            per = []
            for _, facts in self.probe_set:
                top = Counter(f.obj_label for f in facts).most_common(1)[0][0]
                sel = [f for f in facts if split == "all" or ((f.sub_uri, f.relation, f.obj_uri) in self.seen) == (split == "seen")]
                if sel:
                    per.append(np.mean([f.obj_label == top for f in sel]))
            out[split] = round(100 * float(np.mean(per)), 2)
        return out

    def __call__(self, model_dir: Path, method: str, knowledge: str = "full") -> dict:
        from kept.probe.probe import ProbeOptions, probe_relations
        from kept.probe.queries import QueryBuilder
        from kept.probe.scorers import load_scorer
        from kept.train.data import load_tokenizer

        tokenizer = load_tokenizer(model_dir)
        # the registry picks the scorer; "off" = no branches / entities, "none" for models that read no KG
        condition = "full" if knowledge == "none" else knowledge
        scorer = load_scorer(model_dir, store=self.store, knowledge=condition, tokenizer=tokenizer)
        builder = QueryBuilder(tokenizer, store=self.store, link=False, lang="en", linker=self.linker)
        options = ProbeOptions(queries=self.queries, modes=("multi",), progress=False, knowledge=condition)
        metrics, _ = probe_relations(scorer, builder, self.probe_set, options, self.seen_store)
        m = metrics["multi"]
        return {split: {k: round(100 * m[split]["macro"][k], 2) for k in ("p@1", "mrr")} | {"n": m[split]["macro"]["n"]}
                for split in ("seen", "unseen")}


# ---- training -----------------------------------------------------------------------------------
def _accepted(cls, options: dict) -> dict:
    """The options ``cls`` takes (a method's data module takes its own: K-BERT's branch options, ...)."""
    import inspect

    params = inspect.signature(cls).parameters
    return {k: v for k, v in options.items() if k in params}


def make_modules(args, method: str):
    from kept.methods import get_method, resolve

    m = get_method(method)
    corpus = str(args.corpus or args.data / "corpus")
    vocab = str(args.vocab or args.data / "vocab" / "vocab.txt")
    common = dict(batch_size=args.batch_size, max_length=args.max_length, num_workers=0, seed=args.seed,
                  val_fraction=0.0, masking=args.masking, mask_prob=args.mask_prob, store=str(args.data / "store"),
                  max_entities=args.max_entities, branch_object_prob=args.branch_object_prob,
                  branch_swap_prob=args.branch_swap_prob, fact_mask_prob=args.fact_mask_prob,
                  fact_store=str(args.data / "store"))
    data_class, cls = resolve(m.datamodule), resolve(m.module)
    dm = data_class(corpus=corpus, vocab=vocab, **_accepted(data_class, common))
    extra = {m.module_store_kwarg: str(args.data / "store")} if m.module_store_kwarg else {}
    model = cls(**extra,vocab_size=dm.vocab_size, pretrained=str(args.pretrained) if args.pretrained else None,
                hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
                intermediate_size=4 * args.hidden, max_position_embeddings=args.positions, dropout=args.dropout,
                lr=args.lr, warmup_steps=args.warmup, seed=args.seed)
    return dm, model


def export(model, dm, out: Path, method: str) -> Path:
    """The method's Hugging Face export, completed as ``kept pretrain --export`` completes it (``kept.json``
    with the method and the absolute store path, ``vocab.txt``, model card)."""
    from kept.train.export import finish_export

    model.export_hf(out, dm.tokenizer)
    return finish_export(out, method, model, dm, model.trainer)  # called during fit: the trainer is attached


def train(args) -> dict:
    import pytorch_lightning as pl

    torch.set_num_threads(args.threads)
    pl.seed_everything(args.seed, verbose=False)
    dm, model = make_modules(args, args.method)
    args.out.mkdir(parents=True, exist_ok=True)
    eval_at = sorted(set(args.eval_at or [args.steps]))
    exported: list[tuple[int, Path]] = []
    timing = {"train_s": 0.0}

    class ExportAt(pl.Callback):
        def __init__(self):
            self.t0 = None

        def on_train_start(self, trainer, pl_module):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            step = trainer.global_step
            if step in eval_at and all(s != step for s, _ in exported):
                timing["train_s"] += time.perf_counter() - self.t0
                d = export(pl_module, dm, args.out / f"step{step}", args.method)
                exported.append((step, d))
                loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
                log(f"{args.method} step {step}: loss {loss:.3f}, {timing['train_s']:.0f} s training")
                self.t0 = time.perf_counter()

    trainer = pl.Trainer(max_steps=args.steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[ExportAt()],
                         limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    n_train = len(dm.train_indices)
    result = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "func"},
              "train_seconds": round(timing["train_s"], 1), "train_examples": n_train,
              "epochs": round(args.steps * args.batch_size / max(n_train, 1), 1), "curve": []}
    if args.no_probe:
        return result
    prober = Prober(args.data)
    result["majority"] = prober.majority()
    for step, d in exported:
        t = time.perf_counter()
        point = {"step": step}
        for condition in get_method(args.method).knowledge_conditions or ("none",):
            point[condition] = prober(d, args.method, condition)
        point["probe_s"] = round(time.perf_counter() - t, 1)
        result["curve"].append(point)
        log(f"step {step}: {json.dumps({k: v for k, v in point.items() if k != 'step'})}")
    (args.out / "curve.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


# ---- diagnosis ----------------------------------------------------------------------------------
def diagnose(args) -> dict:
    """How often can a K-BERT training mask be read off a branch? Over ``--batches`` training batches."""
    from kept.data.examples import LinkedCorpus
    from kept.fusion.kbert import KBertDataModule

    torch.set_num_threads(args.threads)
    corpus = LinkedCorpus(args.corpus or args.data / "corpus")
    vocab = str(args.vocab or args.data / "vocab" / "vocab.txt")
    dm = KBertDataModule(str(args.data / "corpus"), vocab, str(args.data / "store"), max_entities=args.max_entities,
                         batch_size=args.batch_size, max_length=args.max_length, masking=args.masking,
                         branch_object_prob=args.branch_object_prob, val_fraction=0.0)
    collate = dm.collator
    table = collate.builder.branches
    triples = np.asarray(table.store.triples)
    # the gold (subject, object) of each training sentence, to check the fact's object is in a branch
    import gzip

    with gzip.open(args.data / "data" / "train_sentences.jsonl.gz", "rt", encoding="utf-8") as f:
        sents = [json.loads(line) for line in f]
    store = table.store
    stats = Counter()
    rng = np.random.default_rng(0)
    for b in range(args.batches):
        rows = rng.choice(len(corpus), size=min(args.batch_size, len(corpus)), replace=False)
        examples = [corpus[int(i)] for i in rows]
        batch = collate(examples, generator=torch.Generator().manual_seed(b))
        labels, ids, is_branch = batch["labels"], batch["input_ids"], batch["is_branch"]
        for r in range(len(examples)):
            branch_tokens = set(ids[r][is_branch[r]].tolist())
            targets = labels[r][labels[r] != -100].tolist()
            stats["masked"] += len(targets)
            stats["masked_in_branch"] += sum(t in branch_tokens for t in targets)
            stats["sentences"] += 1
            stats["with_branch"] += bool(branch_tokens)
        matches = collate.branch_object_matches(examples, [np.concatenate([[0], ex.input_ids[: args.max_length - 2], [0]])
                                                            for ex in examples])
        stats["copyable_spans"] += len(matches)
        stats["sentences_with_copyable_span"] += len({m[0] for m in matches})
        # masked tokens lying inside a copyable span
        for row, s, e in matches:
            stats["copyable_tokens"] += e - s
            # the batch's labels are tree-indexed: map sentence index -> tree column
            cols = torch.nonzero((batch["sentence_index"][row] >= s) & (batch["sentence_index"][row] < e)).squeeze(1)
            stats["copyable_tokens_masked"] += int((labels[row, cols] != -100).sum())
        for k, i in enumerate(rows.tolist()):
            s = sents[i]
            ex = examples[k]
            try:
                sub, obj = int(store.entity_id(s["sub_uri"])), int(store.entity_id(s["obj_uri"]))
            except KeyError:
                continue
            linked = set(ex.entity_ids.tolist())
            stats["facts"] += 1
            stats["subject_linked"] += sub in linked
            if sub in linked:
                _, chosen = table.choose(np.asarray([sub]))
                stats["gold_in_subject_branches"] += obj in set(triples[chosen, 2].tolist())
                stats["subject_out_degree"] += int(table.candidate_order()[0][sub + 1] - table.candidate_order()[0][sub])
            stats["object_linked"] += obj in linked
    out = dict(stats)
    out["share_masked_in_branch"] = round(stats["masked_in_branch"] / max(stats["masked"], 1), 4)
    out["share_masked_copyable"] = round(stats["copyable_tokens_masked"] / max(stats["masked"], 1), 4)
    out["share_copyable_tokens_masked"] = round(stats["copyable_tokens_masked"] / max(stats["copyable_tokens"], 1), 4)
    out["share_sentences_with_copyable_span"] = round(stats["sentences_with_copyable_span"] / max(stats["sentences"], 1), 4)
    out["share_subject_linked"] = round(stats["subject_linked"] / max(stats["facts"], 1), 4)
    out["share_gold_in_branch_given_linked"] = round(stats["gold_in_subject_branches"] / max(stats["subject_linked"], 1), 4)
    out["mean_subject_out_degree"] = round(stats["subject_out_degree"] / max(stats["subject_linked"], 1), 2)
    print(json.dumps(out, indent=2))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=("train", "base", "diagnose", "probe"))
    p.add_argument("--models", type=Path, nargs="*", help="probe: exported model directories")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path)
    p.add_argument("--method", default=BASELINE, choices=[n for n, m in METHODS.items() if not m.module_store_kwarg],
                   help="a registered method (kept.methods) built on a stock BERT")
    p.add_argument("--corpus", type=Path, help="linked corpus (default DATA/corpus; base: DATA/wiki)")
    p.add_argument("--vocab", type=Path, help="vocab.txt (default DATA/vocab/vocab.txt)")
    p.add_argument("--pretrained", type=Path, help="HF BERT directory to start from (shared base model)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--eval-at", type=int, nargs="*")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--positions", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--masking", default="token")
    p.add_argument("--mask-prob", type=float, default=0.15)
    p.add_argument("--max-entities", type=int, default=2)
    p.add_argument("--branch-object-prob", type=float, default=0.0)
    p.add_argument("--branch-swap-prob", type=float, default=0.0)
    p.add_argument("--fact-mask-prob", type=float, default=0.0,
                   help="mask each fact object span whole with this probability (kept.masking.facts)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", type=int, default=20, help="diagnose: batches to inspect")
    p.add_argument("--queries", default="template", choices=("template", "sentences"),
                   help="probe: the relation's template (default) or the fact's first evidence sentence")
    p.add_argument("--no-probe", action="store_true")
    args = p.parse_args(argv)
    if args.cmd == "diagnose":
        diagnose(args)
        return 0
    if args.cmd == "probe":
        torch.set_num_threads(args.threads)
        prober = Prober(args.data, args.queries)
        print(json.dumps({"majority": prober.majority()}))
        for d in args.models:
            conds = get_method(args.method).knowledge_conditions or ("none",)
            print(json.dumps({"model": str(d), **{c: prober(d, args.method, c) for c in conds}}), flush=True)
        return 0
    if args.cmd == "base":
        args.corpus = args.corpus or args.data / "wiki"
        args.method, args.no_probe = BASELINE, True
        args.eval_at = [args.steps]
    t = time.perf_counter()
    res = train(args)
    log(f"done in {time.perf_counter() - t:.0f} s (training {res['train_seconds']} s, {res['epochs']} epochs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
