"""What the tasks of ``kept finetune`` share: text files and splits, the BERT they start from, the
optimizer schedule, the Lightning Trainer and the Hugging Face folder they save."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from kept.files import normal_mode_tree
from kept.fusion.kbert.branches import BranchTable
from kept.model_dir import check_model_dir
from kept.progress import with_progress_bar

SPLITS = ("train", "dev", "test")
ROOT = Path(__file__).resolve().parents[2]
#: the vocabulary of a fresh BERT per ``--lang``
DEFAULT_VOCAB = {"zh": ROOT / "kg_data" / "vocab" / "bert-base-chinese-vocab.txt",
                 "en": ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"}


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 (or gzip) file; ValueError naming the file and line of
    bytes that are not text (invalid UTF-8, NUL) or of a truncated gzip stream. A BOM is dropped."""
    opener = gzip.open if path.suffix == ".gz" else open
    lineno = 0
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not UTF-8 text (byte {exc.start} of the line)") from None
                if "\x00" in line:
                    raise ValueError(f"{path}:{lineno}: NUL byte in the line: a binary file, not text")
                yield lineno, line.removeprefix("\ufeff") if lineno == 1 else line
    except (EOFError, OSError) as exc:
        raise ValueError(f"{path}:{lineno + 1}: truncated or corrupt file ({exc})") from None


def find_split(data_dir: Path, name: str) -> Path:
    """``data_dir/name.tsv`` or ``name.tsv.gz``."""
    for candidate in (data_dir / f"{name}.tsv", data_dir / f"{name}.tsv.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no {name}.tsv or {name}.tsv.gz in {data_dir}")


def split_paths(args: argparse.Namespace) -> dict[str, Path]:
    """``{"train"|"dev"|"test": path}`` from ``--train/--dev/--test``, else ``--data DIR``."""
    paths = {name: getattr(args, name) or (find_split(args.data, name) if args.data else None) for name in SPLITS}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        raise ValueError(f"give --data DIR or --{' --'.join(missing)}")
    return paths


def limit_splits(splits: dict[str, tuple], args: argparse.Namespace) -> dict[str, tuple]:
    """Each split's parallel lists cut to ``--limit-train`` (train) / ``--limit-eval`` (dev, test); None: all."""
    out = dict(splits)
    for name, limit in (("train", args.limit_train), ("dev", args.limit_eval), ("test", args.limit_eval)):
        if limit is not None:
            out[name] = tuple(column[:limit] for column in splits[name])
    return out


def setup(args: argparse.Namespace) -> tuple[Any, Any, BranchTable | None]:
    """``(tokenizer, store, branches)`` of a run: threads and seed set; the tokenizer of ``--vocab``, else
    ``--pretrained``'s vocab.txt, else :data:`DEFAULT_VOCAB`; the store of ``--kg`` and its branch table
    (``--max-entities``, ``--no-predicate``, ``--branch-seed``), both None without ``--kg``."""
    from kept.data.tokenizer import load_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    vocab = args.vocab or (args.pretrained if args.pretrained and (args.pretrained / "vocab.txt").exists()
                           else DEFAULT_VOCAB[args.lang])
    tokenizer = load_tokenizer(vocab)
    pl.seed_everything(args.seed, verbose=False)
    if args.kg is None:
        return tokenizer, None, None
    from kept.kg import open_store

    store = open_store(args.kg)
    return tokenizer, store, BranchTable(store, tokenizer, args.lang, args.max_entities, not args.no_predicate,
                                         args.branch_seed)


def write_metrics(metrics: dict, args: argparse.Namespace) -> dict:
    """``metrics`` + the run's ``settings`` written to ``args.out/metrics.json`` (via a temp file); returned."""
    metrics = {**metrics, "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                                       if k != "func"}}
    path = args.out / "metrics.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return metrics


def load_bert(model_class: Any, num_labels: int, vocab_size: int, pretrained: str | None, hidden_size: int = 128,
              num_layers: int = 2, num_heads: int = 2, intermediate_size: int = 512,
              max_position_embeddings: int = 512, dropout: float = 0.1, **config: Any) -> torch.nn.Module:
    """A ``BertFor...`` head model (``model_class``) with ``num_labels`` outputs: read from the local
    checkpoint directory ``pretrained`` (any BERT, a kept export included; the head is new), or, when
    ``pretrained`` is None, a fresh BERT of the given sizes (defaults: hidden 128, 2 layers, 2 heads,
    intermediate 512, 512 positions, dropout 0.1). ``config``: more BertConfig fields (id2label, ...)."""
    from transformers import BertConfig

    if pretrained is not None:
        if not (Path(pretrained) / "config.json").exists():
            raise FileNotFoundError(f"{pretrained} is not a local BERT checkpoint directory (no config.json)")
        check_model_dir(pretrained)
        model = model_class.from_pretrained(pretrained, num_labels=num_labels, local_files_only=True,
                                            attn_implementation="sdpa", **config)
        if model.config.vocab_size != vocab_size:
            raise ValueError(f"{pretrained} has {model.config.vocab_size} token embeddings but the "
                             f"tokenizer {vocab_size}: use the checkpoint's own vocabulary")
        return model
    return model_class(BertConfig(vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
                                  num_attention_heads=num_heads, intermediate_size=intermediate_size,
                                  max_position_embeddings=max_position_embeddings, hidden_dropout_prob=dropout,
                                  attention_probs_dropout_prob=dropout, num_labels=num_labels, **config))


def adamw_with_warmup(module: pl.LightningModule, lr: float, weight_decay: float = 0.01,
                      warmup_ratio: float = 0.1) -> dict:
    """AdamW (no decay on biases and LayerNorm) with ``warmup_ratio`` of the Trainer's steps of linear
    warm-up to ``lr``, then linear decay to 0: ``configure_optimizers``' return value."""
    from transformers import get_linear_schedule_with_warmup

    named = list(module.named_parameters())
    plain = [n.endswith("bias") or "LayerNorm" in n for n, _ in named]
    optimizer = torch.optim.AdamW([{"params": [p for (_, p), q in zip(named, plain) if not q],
                                    "weight_decay": weight_decay},
                                   {"params": [p for (_, p), q in zip(named, plain) if q], "weight_decay": 0.0}],
                                  lr=lr)
    total = max(int(module.trainer.estimated_stepping_batches), 1)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * total), total)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class TreeSplits(pl.LightningDataModule):
    """The loaders of a fine-tuning task: ``examples[split]`` (train, dev, test) batched by ``collate``
    (both set by the task's ``__init__``); training batches shuffled with ``seed``, evaluation batches twice
    ``batch_size``. batch_size: default 32. seed: default 0. num_workers: DataLoader workers (default 0)."""

    def __init__(self, collate: Any, batch_size: int = 32, seed: int = 0, num_workers: int = 0):
        super().__init__()
        self.examples: dict[str, list] = {}
        self.collate, self.batch_size, self.seed, self.num_workers = collate, batch_size, seed, num_workers

    def _loader(self, name: str, train: bool) -> DataLoader:
        return DataLoader(self.examples[name], batch_size=self.batch_size * (1 if train else 2), shuffle=train,
                          generator=torch.Generator().manual_seed(self.seed) if train else None,
                          collate_fn=self.collate, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


class TreeFinetuner(pl.LightningModule):
    """The Lightning wiring of a fine-tuning task: every stage runs the task's ``_step(batch, stage)``
    (stage ``train``, ``val`` or ``test``; the loss), optimised by :func:`adamw_with_warmup` with the
    ``lr``, ``weight_decay`` and ``warmup_ratio`` hyperparameters the task saved (each task defines ``_step``)."""

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        return adamw_with_warmup(self, self.hparams.lr, self.hparams.weight_decay, self.hparams.warmup_ratio)


def make_trainer(args: argparse.Namespace, monitor: str) -> tuple[pl.Trainer, pl.callbacks.ModelCheckpoint]:
    """The Trainer of a fine-tuning run and its callback keeping the checkpoint with the highest ``monitor``
    (``args``: epochs, max_steps, val_every, accelerator, out, no_progress). bf16 on CUDA, else fp32."""
    best = pl.callbacks.ModelCheckpoint(dirpath=args.out / "checkpoints", monitor=monitor, mode="max",
                                        save_top_k=1, filename="best-{step}")
    trainer = pl.Trainer(max_epochs=args.epochs, max_steps=args.max_steps, accelerator=args.accelerator,
                         val_check_interval=args.val_every, check_val_every_n_epoch=None if args.val_every else 1,
                         callbacks=with_progress_bar([best], not args.no_progress), default_root_dir=args.out,
                         enable_progress_bar=not args.no_progress,
                         logger=pl.loggers.CSVLogger(args.out, name="logs"), enable_model_summary=False,
                         log_every_n_steps=10, precision="bf16-mixed" if torch.cuda.is_available() else "32-true")
    return trainer, best


def save_hf_model(model: Any, tokenizer: Any, out: Path) -> Path:
    """``model.save_pretrained`` + ``tokenizer.save_pretrained`` (+ ``vocab.txt``) into ``out`` (replaced whole): written to
    ``out.tmp`` first and renamed, so ``out`` is never half written. Returns ``out``."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if not (tmp / "vocab.txt").exists():   # a fast tokenizer saves tokenizer.json only; BERT tools read vocab.txt
        vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
        (tmp / "vocab.txt").write_text("".join(f"{piece}\n" for piece, _ in vocab), encoding="utf-8")
    normal_mode_tree(tmp)  # safetensors writes its files 0600
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
