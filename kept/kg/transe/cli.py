"""``kept kg embed STORE``: train TransE on a KG store and save the vectors into it.

The work is done by :mod:`kept.kg.transe.train` (imported only when the command runs,
so ``kept --help`` stays fast); files are described in :mod:`kept.kg.transe.io`, the
default recipe and its numbers in ``docs/transe.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kept.flags import LIGHTNING_DEVICES, add_deprecated, add_device, add_no_progress
from kept.kg.transe.config import TransEConfig


# ---- the subcommand ----------------------------------------------------------------------------
def register_embed(kg_sub: argparse._SubParsersAction) -> None:
    """Add ``kept kg embed`` to the ``kept kg`` subparsers."""
    d = TransEConfig()
    e = kg_sub.add_parser(
        "embed", help="train TransE entity/relation vectors and save them into the store",
        description="Train TransE on a store (its train/valid/test splits, else a seeded 90/5/5 split), "
                    "keep the epoch with the best filtered validation MRR and write "
                    "STORE/embeddings/NAME/{entity,relation}.npy, metrics.json, config.json. "
                    "Defaults: the recipe of docs/transe.md.",
        epilog="example: kept kg embed stores/fb15k237 --max-minutes 20 --export-openke kg_embed/")
    e.add_argument("store", type=Path)
    e.add_argument("--dim", type=int, help=f"embedding size (default: {d.dim})")
    e.add_argument("--epochs", type=int, help=f"maximum epochs (default: {d.epochs})")
    e.add_argument("--batch-size", type=int, help=f"positive triples per step (default: {d.batch_size})")
    e.add_argument("--lr", type=float, help=f"learning rate (default: {d.lr})")
    e.add_argument("--margin", type=float, help=f"margin, or γ with self-adversarial sampling (default: {d.margin})")
    e.add_argument("--norm", type=int, choices=[1, 2], help=f"L1 or L2 distance (default: {d.norm})")
    e.add_argument("--negatives", type=int, help=f"negatives per positive (default: {d.negatives})")
    e.add_argument("--chunk-size", type=int,
                   help="triples sharing their negatives, 0 = whole batch, 1 = independent (default: 0)")
    e.add_argument("--sampler", choices=["uniform", "bern"], help=f"head/tail corruption (default: {d.sampler})")
    e.add_argument("--adversarial-temperature", type=float,
                   help=f"self-adversarial α; 0 = margin ranking loss (default: {d.adversarial_temperature})")
    e.add_argument("--normalize-entities", action=argparse.BooleanOptionalAction, default=None,
                   help="renormalise entity vectors to unit L2 norm after each step, as Bordes et al. "
                        f"(default: {'on' if d.normalize_entities else 'off'})")
    e.add_argument("--optimizer", choices=["sparse_adam", "adam"], help=f"(default: {d.optimizer})")
    e.add_argument("--eval-every", type=int, help=f"validate every N epochs (default: {d.eval_every})")
    e.add_argument("--patience", type=int, help=f"validations without improvement before stopping "
                                                f"(default: {d.patience})")
    e.add_argument("--eval-batch-size", type=int, help="queries per evaluation batch (default: automatic)")
    e.add_argument("--seed", type=int, help=f"(default: {d.seed})")
    e.add_argument("--max-minutes", type=float, help="stop training after this many minutes")
    add_device(e, dest="accelerator")
    add_deprecated(e, "--accelerator", "--device", dest="accelerator", choices=LIGHTNING_DEVICES)
    e.add_argument("--devices", default="auto", help="how many devices of that kind (Lightning's devices; default: auto)")
    e.add_argument("--name", default="transe", help="embeddings/NAME in the store (default: transe)")
    e.add_argument("--work-dir", type=Path, help="checkpoints and logs (default: STORE/embeddings/.work-NAME)")
    e.add_argument("--resume", nargs="?", const="last", metavar="CKPT",
                   help="continue from a checkpoint (default: WORK/checkpoints/last.ckpt)")
    e.add_argument("--evaluate-only", action="store_true", help="re-evaluate the saved vectors and exit")
    e.add_argument("--export-openke", type=Path, metavar="DIR",
                   help="also write OpenKE/ERNIE files: entity2id.txt, relation2id.txt, entity2vec.vec, ...")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_no_progress(e)
    e.set_defaults(func=_embed)


_CONFIG_ARGS = ("dim", "epochs", "batch_size", "lr", "margin", "norm", "negatives", "chunk_size", "sampler",
                "adversarial_temperature", "normalize_entities", "optimizer", "eval_every", "patience",
                "eval_batch_size", "seed")


def main(argv: list[str]) -> int:
    """``kept kg embed ARGV`` as a function (the demo calls it); returns the exit status."""
    parser = argparse.ArgumentParser(prog="kept kg")
    register_embed(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["embed", *argv])
    return args.func(args)


def _print_metrics(metrics: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    print(f"{'split':<6} {'side':<8} {'MRR':>7} {'MR':>9} {'H@1':>7} {'H@3':>7} {'H@10':>7}")
    for split in ("valid", "test"):
        for side, m in metrics[split].items():
            print(f"{split:<6} {side:<8} {m['mrr']:7.4f} {m['mr']:9.1f} {m['hits@1']:7.4f} "
                  f"{m['hits@3']:7.4f} {m['hits@10']:7.4f}")


def _embed(args: argparse.Namespace) -> int:
    from kept.kg.store import open_store
    from kept.kg.transe.io import export_openke, read_json, write_embeddings
    from kept.kg.transe.train import device_for, evaluate_embeddings, train_transe

    store = open_store(args.store)
    if args.evaluate_only:
        metrics = evaluate_embeddings(store, args.name, str(device_for(args.accelerator)))
        _print_metrics(metrics, args.json)
        saved = read_json(store, "metrics.json", args.name)
        same = all(saved.get(s) == metrics[s] for s in ("valid", "test"))
        print(f"{'matches' if same else 'differs from'} {store.path / 'embeddings' / args.name / 'metrics.json'}",
              file=sys.stderr)
        return 0
    work = args.work_dir or store.path / "embeddings" / f".work-{args.name}"
    given = {k: getattr(args, k) for k in _CONFIG_ARGS if getattr(args, k) is not None}
    resume = None
    if args.resume:
        resume = work / "checkpoints" / "last.ckpt" if args.resume == "last" else Path(args.resume)
        if not resume.exists():
            raise FileNotFoundError(f"no checkpoint to resume from at {resume}")
        saved = _saved_config(resume)
        given = {**saved, **given}  # the interrupted run's settings, unless overridden here
    config = TransEConfig.from_dict(given)
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    result = train_transe(store, config, work, args.accelerator, devices, args.max_minutes, resume,
                          progress=not args.no_progress)
    if not result.is_global_zero:  # other processes of a multi-device run: process 0 writes
        return 0
    out = write_embeddings(store, result.entity, result.relation, result.metrics, result.config, args.name)
    _print_metrics(result.metrics, args.json)
    print(f"wrote {out} ({result.metrics['epochs']} epochs, {result.metrics['train_seconds']:.0f} s training)",
          file=sys.stderr)
    if args.export_openke:
        print(f"wrote OpenKE files to {export_openke(store, args.export_openke, args.name)}", file=sys.stderr)
    return 0


def _saved_config(checkpoint: Path) -> dict:
    """The TransE settings saved in ``checkpoint``, read with ``weights_only=True``: tensors and
    plain data only, so a checkpoint someone sent cannot run code."""
    import pickle

    import torch

    from kept.kg.sources.errors import SourceError

    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
        config = saved["hyper_parameters"]["config"]
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, KeyError, TypeError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(checkpoint, None, f"not a kept TransE checkpoint ({problem})") from None
    if not isinstance(config, dict):
        raise SourceError(checkpoint, None, "not a kept TransE checkpoint (no saved config)")
    return config

