"""Training-step time of K-BERT, ERNIE-T and UKTP relative to plain masked LM, same run.

    python bench/fusion_step.py                        # CPU: small BERT (hidden 256, 4 layers)
    python bench/fusion_step.py --size base --device cuda    # GPU: BERT-base size, bf16 autocast

Every method trains on a real batch of the same shape, ``--batch`` sequences of exactly
``--seq`` tokens (special tokens, K-BERT branches and the UKTP triple included), built from
the demo workspace's linked T-REx corpus and store (``kept demo`` makes them; paths by flag):

* ``mlm``: ``MaskedLMModule`` on token-masked sentences (the reference);
* ``kbert``: ``KBertModule`` on sentence trees (branches injected, 4-D visible-matrix mask,
  soft positions) -- the same stock BERT with a different mask and positions;
* ``ernie-t``: ``ErnieTModule`` with N + M = the same number of layers, M = half of them
  aggregators over the store's TransE vectors; MLM + dEA;
* ``uktp``: ``UktpModule`` on ``[CLS] h r t [SEP] sentence [SEP]`` pairs.

A step is forward + backward + AdamW update (``optimizer.zero_grad(set_to_none=True)``),
timed after warm-up steps, the methods interleaved round-robin so that load changes hit all
of them alike; the median step is reported, and each method's ratio to ``mlm``. On CUDA the
steps run under bf16 autocast and the model FLOP utilisation is reported: model FLOPs per step
(6 × the parameters touched per token × tokens, embeddings excluded, plus the attention
matmuls 12 × layers × hidden × seq per token) / step time / the GPU's dense bf16 peak.
Writes ``bench/results/fusion_step[-<device>].json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from kept.methods import BASELINE, METHODS

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"small": dict(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024),
         "base": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
         "tiny": dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)}  # smoke runs
#: dense bf16 peak (TFLOP/s) by device-name substring; H100/H200 SXM: 989.4 without sparsity
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0}


def build(method: str, args: argparse.Namespace, vocab_size: int):
    """(module, batch) of one registered method (kept.methods) at the benchmark's size and shape."""
    from kept.methods import get_method, resolve

    m = get_method(method)
    size = dict(SIZES[args.size], max_position_embeddings=max(512, args.seq), dropout=0.1)
    if m.module_store_kwarg:
        size[m.module_store_kwarg] = str(args.store)
    batch = resolve(m.benchmark_batch)(args.corpus, args.store, args.vocab, args.batch, args.seq)
    return resolve(m.module)(vocab_size=vocab_size, **size), batch


def model_flops_per_step(module: torch.nn.Module, batch: int, seq: int, layers: int, hidden: int) -> float:
    """6 · (non-embedding parameters, the tied MLM decoder counted as a matmul) · tokens + attention."""
    params = 0
    for name, p in module.named_parameters():
        if "embeddings" in name or "entity_embeddings" in name:
            continue
        params += p.numel()
    decoder = [m for n, m in module.named_modules() if n.endswith("decoder") and hasattr(m, "weight")]
    if decoder and decoder[0].weight.data_ptr() in {p.data_ptr() for n, p in module.named_parameters()
                                                   if "embeddings" in n}:
        params += decoder[0].weight.numel()                                  # tied: skipped above, still a matmul
    tokens = batch * seq
    return 6.0 * params * tokens + 12.0 * layers * hidden * seq * tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=[name for name, m in METHODS.items() if not m.staged_masking],
                   choices=list(METHODS), help="methods to time (default: all but staged masking, which has "
                                               "the baseline's step)")
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps per method (default 10)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--corpus", type=Path, default=ROOT / "runs" / "demo" / "corpus" / "trex")
    p.add_argument("--store", type=Path, default=ROOT / "runs" / "demo" / "stores" / "trex")
    p.add_argument("--vocab", type=Path, default=ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    for path, flag in ((args.corpus, "--corpus"), (args.store, "--store")):
        if not (path / "meta.json").exists():
            p.error(f"{path} not found: run `make demo` first (it makes runs/demo), or pass {flag}")
    if BASELINE not in args.methods:
        args.methods.insert(0, BASELINE)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    from kept.train.data import load_tokenizer

    vocab_size = len(load_tokenizer(args.vocab))
    runs = {}
    for method in args.methods:
        module, batch = build(method, args, vocab_size)
        module.to(device).train()
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        optimizer = torch.optim.AdamW([q for q in module.parameters() if q.requires_grad], lr=1e-4)
        runs[method] = (module, batch, optimizer)

    def step(method: str) -> float:
        module, batch, optimizer = runs[method]
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = module.losses(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    times: dict[str, list[float]] = {m: [] for m in runs}
    for i in range(args.warmup + args.steps):
        for method in runs:                                   # interleaved: load changes hit every method
            seconds = step(method)
            if i >= args.warmup:
                times[method].append(seconds)
    size = SIZES[args.size]
    peak = next((v for k, v in PEAK_TFLOPS.items() if cuda and k in torch.cuda.get_device_name(device)), None)
    reference = statistics.median(times[BASELINE])
    results = {}
    for method, ts in times.items():
        median = statistics.median(ts)
        module = runs[method][0]
        row = {"median_s": round(median, 5), "min_s": round(min(ts), 5), "ratio_to_mlm": round(median / reference, 3),
               "tokens_per_s": round(args.batch * args.seq / median)}
        if cuda:
            flops = model_flops_per_step(module, args.batch, args.seq, size["num_layers"], size["hidden_size"])
            row["model_tflops"] = round(flops / median / 1e12, 1)
            if peak:
                row["mfu"] = round(flops / median / 1e12 / peak, 3)
        results[method] = row
    device_name = torch.cuda.get_device_name(device) if cuda else f"CPU, {args.threads} threads"
    report = {"device": device_name, "size": args.size, **SIZES[args.size], "batch": args.batch, "seq": args.seq,
              "steps": args.steps, "precision": "bf16 autocast" if cuda else "fp32", "peak_tflops": peak,
              "methods": results, "command": "python bench/fusion_step.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in (("size", args.size), ("device", args.device),
                                                              ("batch", args.batch), ("seq", args.seq)))}
    out = args.out or ROOT / "bench" / "results" / f"fusion_step-{device.type}-{args.size}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{device_name}, {args.size} ({size['num_layers']} layers, hidden {size['hidden_size']}), "
          f"batch {args.batch} x {args.seq} tokens, {report['precision']}")
    print("| method | median step | ratio to mlm | tokens/s |" + (" model TFLOP/s | MFU |" if cuda else ""))
    print("|---|---:|---:|---:|" + ("---:|---:|" if cuda else ""))
    for method, row in results.items():
        extra = f" {row['model_tflops']} | {row.get('mfu', '-')} |" if cuda else ""
        print(f"| {method} | {1000 * row['median_s']:.1f} ms | {row['ratio_to_mlm']:.2f} | {row['tokens_per_s']:,} |"
              + extra)


if __name__ == "__main__":
    main()
