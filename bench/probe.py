"""Cloze-probe throughput: the batched scorer vs a naive reference, with a BERT-base-size model on CPU.

    python bench/probe.py [--facts-per-relation 20] [--naive-queries 64] [--repeats 2]
                          [--real-model runs/demo/models/mlm] [--quick] [--out JSON]

Queries: LAMA T-REx template queries of the shipped sample (``kg_data/trex/probe``, 20
relations), the first N facts of each relation, single-wordpiece objects (LAMA mode),
tokenised with the bert-base-uncased vocabulary. Model: BertForMaskedLM with BERT-base
sizes (hidden 768, 12 layers, 12 heads, vocab 30522), random init (speed does not depend
on the weights). Timed in the same run, interleaved rounds, best of ``--repeats``:

* ``naive``: one query at a time, full ``[1, L, V]`` logits, log-softmax, read the [MASK] row
  (on the first ``--naive-queries`` queries);
* ``batched``: :class:`kept.probe.scorers.MaskedLMScorer` (length-sorted batches, SDPA,
  inference mode, MLM head only at [MASK] rows), float32; and its opt-in ``bfloat16`` and
  ``int8`` (dynamic quantisation) variants;
* ``end_to_end``: ``probe_relations`` in single mode (query building + scoring + ranking), float32
  and int8.

With ``--real-model`` (a trained model directory, e.g. the demo's), the three precisions
are also compared on what matters: the ranks and macro metrics of a full probe.
Writes ``bench/results/probe.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kept.probe.lama import load_probe_set  # noqa: E402
from kept.probe.probe import ProbeOptions, build_queries, probe_relations, query_units  # noqa: E402
from kept.probe.queries import QueryBuilder  # noqa: E402
from kept.probe.scorers import MaskedLMScorer, quantize_linear_int8  # noqa: E402

MODEL_SIZES = {"base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
               "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def naive_log_probs(model, tokenizer, examples) -> list[torch.Tensor]:
    """The reference: unbatched, full logits."""
    out = []
    with torch.no_grad():
        for ex in examples:
            ids = torch.tensor([[tokenizer.cls_token_id, *ex.input_ids.tolist(), tokenizer.sep_token_id]])
            logits = model(input_ids=ids).logits                                   # [1, L, V]
            out.append(logits.log_softmax(-1)[0][ids[0] == tokenizer.mask_token_id])
    return out


def real_model_check(model_dir: Path, facts_per_relation: int) -> dict:
    """Probe a trained model in float32, bfloat16 and int8: macro metrics and rank agreement."""
    from kept.train.data import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    probe_set = load_probe_set(ROOT / "kg_data" / "trex" / "probe")
    options = ProbeOptions(max_facts=facts_per_relation, progress=False)
    runs = {}
    for name, kw in (("float32", {}), ("bfloat16", {"dtype": "bfloat16"}), ("int8", {"quantize": True})):
        scorer = MaskedLMScorer.from_pretrained(model_dir, tokenizer=tokenizer, **kw)
        runs[name] = probe_relations(scorer, QueryBuilder(tokenizer), probe_set, options, name=name)
    out = {"model": str(model_dir), "facts_per_relation": facts_per_relation}
    for mode in options.modes:
        ref = [r for r in runs["float32"][1] if r["mode"] == mode]
        out[mode] = {}
        for name, (metrics, records) in runs.items():
            rows = [r for r in records if r["mode"] == mode]
            same_rank = [a["rank"] == b["rank"] for a, b in zip(rows, ref)]
            same_top1 = [a["prediction"] == b["prediction"] for a, b in zip(rows, ref)]
            out[mode][name] = {**{k: metrics[mode]["macro"][k] for k in ("n", "p@1", "p@10", "mrr")},
                               "same_rank_as_float32": float(np.mean(same_rank)) if rows else None,
                               "same_top1_as_float32": float(np.mean(same_top1)) if rows else None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facts-per-relation", type=int, default=20, help="queries = this x 20 relations")
    ap.add_argument("--naive-queries", type=int, default=64, help="queries timed with the naive reference")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--real-model", type=Path, default=ROOT / "runs" / "demo" / "models" / "mlm",
                    help="trained model for the precision check (skipped when absent)")
    ap.add_argument("--model-size", choices=sorted(MODEL_SIZES), default="base",
                    help="BERT size of the timed model (default: base; tiny: hidden 64, 2 layers, for smoke runs)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke size (seconds): --model-size tiny, 2 facts per relation, 4 naive queries, 1 repeat")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "probe.json")
    args = ap.parse_args()
    if args.quick:
        args.model_size, args.facts_per_relation, args.naive_queries, args.repeats = "tiny", 2, 4, 1
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    load_before = os.getloadavg()
    tokenizer = BertTokenizer(vocab=str(ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"),
                              do_lower_case=True)
    probe_set = [(rel, facts[: args.facts_per_relation]) for rel, facts in
                 load_probe_set(ROOT / "kg_data" / "trex" / "probe")]
    builder = QueryBuilder(tokenizer)
    queries = []
    for relation, facts in probe_set:
        queries += [q for q in build_queries(builder, relation, facts, query_units(relation, facts, ProbeOptions()), 1)
                    if q is not None]
    lengths = np.asarray([len(q) + 2 for q in queries])
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=30522, **MODEL_SIZES[args.model_size])).eval()
    variants = {"batched_float32": MaskedLMScorer(model, tokenizer, batch_size=args.batch_size),
                "batched_bfloat16": MaskedLMScorer(BertForMaskedLM(model.config).eval().to(torch.bfloat16),
                                                   tokenizer, batch_size=args.batch_size),
                "batched_int8": MaskedLMScorer(quantize_linear_int8(model), tokenizer, batch_size=args.batch_size)}
    variants["batched_bfloat16"].model.load_state_dict(model.state_dict())
    naive_set = queries[: args.naive_queries]
    # correctness of the fast path on this model before timing it
    fast, slow = variants["batched_float32"].mask_log_probs(naive_set), naive_log_probs(model, tokenizer, naive_set)
    max_diff = max(float((a - b).abs().max()) for a, b in zip(fast, slow))
    e2e_options = ProbeOptions(modes=("single",), progress=False)
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for name in ["naive_float32", *variants, "end_to_end_float32", "end_to_end_int8"]:
            start = time.perf_counter()
            if name == "naive_float32":
                naive_log_probs(model, tokenizer, naive_set)
                n = len(naive_set)
            elif name.startswith("end_to_end_"):
                scorer = variants["batched_" + name.removeprefix("end_to_end_")]
                metrics, _ = probe_relations(scorer, builder, probe_set, e2e_options)
                n = metrics["single"]["macro"]["n"]
            else:
                variants[name].mask_log_probs(queries)
                n = len(queries)
            best[name] = max(best.get(name, 0.0), n / (time.perf_counter() - start))
    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()], "torch": torch.__version__},
        "model": "BertForMaskedLM hidden {hidden_size}, {num_hidden_layers} layers, {num_attention_heads} heads, "
                 "vocab 30522 (random init)".format(**MODEL_SIZES[args.model_size]),
        "queries": len(queries), "query_length_with_cls_sep": {"mean": float(lengths.mean()), "max": int(lengths.max())},
        "naive_queries": len(naive_set), "batch_size": args.batch_size, "repeats": args.repeats,
        "queries_per_second": {k: round(v, 2) for k, v in best.items()},
        "speedup_vs_naive": {k: round(v / best["naive_float32"], 2) for k, v in best.items()},
        "max_abs_logprob_diff_batched_vs_naive": max_diff,
        "target_queries_per_second": 200,
    }
    if args.real_model and (args.real_model / "config.json").exists():
        result["precision_check"] = real_model_check(args.real_model, args.facts_per_relation)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(queries)} queries (mean length {lengths.mean():.1f}), CPU: {result['machine']['cpu']}, "
          f"{torch.get_num_threads()} threads, load {load_before[0]:.1f}")
    print("| variant | queries/s | vs naive |\n|---|---|---|")
    for name, qps in best.items():
        print(f"| {name} | {qps:.1f} | {qps / best['naive_float32']:.1f}x |")
    print(f"max |log-prob| difference batched vs naive: {max_diff:.2e}")


if __name__ == "__main__":
    main()
