"""``kept finetune``: sentence classification (default) or BIO tagging (``--task ner``,
:mod:`kept.train.ner`), with or without K-BERT knowledge.

    kept finetune --data ../shared/data/corpus/zh/book_review --store runs/demo/stores/hownet \\
        --out runs/finetune/book_review-hownet --epochs 1

Reads ``label<TAB>text`` files (``train``, ``dev``, ``test`` as ``.tsv`` or ``.tsv.gz`` in
``--data``, or given one by one; a header line such as ``label<TAB>text_a`` is recognised),
fine-tunes a Hugging Face ``BertForSequenceClassification`` -- from a local checkpoint
directory (``--pretrained``; any BERT, a kept export included) or a fresh small BERT -- with a
Lightning Trainer, keeps the checkpoint with the best dev accuracy, and writes
``metrics.json`` (dev and test accuracy of that checkpoint, the run's settings) and ``model/``
(that checkpoint as a Hugging Face folder: ``save_pretrained`` + tokenizer + vocab.txt) to ``--out``.

With ``--store STORE`` every sentence becomes a K-BERT sentence tree: Chinese (``--lang zh``,
default) is segmented with jieba using the store's subject labels as user words, one token
per character as in K-BERT, and every word that is a subject gets up to ``--max-branches``
branches (relation + object, or the object alone with ``--no-predicate``); English uses the
entity linker's spans. Without ``--store`` the same model reads the plain sentences.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kept.data.examples import LinkedExample
from kept.flags import LIGHTNING_DEVICES, add_deprecated, add_device, add_no_progress, quiet_progress
from kept.fusion.kbert.data import JiebaSubjectSegmenter
from kept.fusion.kbert.model import tree_forward
from kept.fusion.kbert.tree import SentenceTreeBuilder
from kept.train.finetune_common import (
    DEFAULT_VOCAB,  # noqa: F401  (re-exported)
    TreeFinetuner,
    TreeSplits,
    find_split,
    limit_splits,
    load_bert,
    make_trainer,
    save_hf_model,
    setup,
    split_paths,
    text_lines,
    write_metrics,
)

__all__ = ["find_split", "read_labelled", "SentenceClassifier", "ClassificationData", "TextEncoder",
           "TreeClassificationCollate", "add_arguments", "finetune", "main", "run"]


def read_labelled(path: str | Path) -> tuple[list[str], list[int]]:
    """``(texts, labels)`` of a ``label<TAB>text`` file (``.gz`` read as gzip).

    A first line whose first field is not an integer is a header naming the columns; the
    label column is ``label`` and the text column ``text_a`` (or ``text``, else the other one).
    Raises ValueError naming the file and line of a malformed row.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}")
    texts, labels = [], []
    label_col, text_col = 0, 1
    for lineno, line in text_lines(path):
        fields = line.rstrip("\r\n").split("\t")
        if lineno == 1 and not fields[0].strip().lstrip("-").isdigit():
            names = [name.strip().lower() for name in fields]
            if "label" not in names:
                raise ValueError(f"{path}:1: header {fields} has no 'label' column")
            label_col = names.index("label")
            text_col = next((names.index(n) for n in ("text_a", "text") if n in names),
                            next(i for i in range(len(names)) if i != label_col))
            continue
        if not line.strip():
            continue
        if len(fields) <= max(label_col, text_col):
            raise ValueError(f"{path}:{lineno}: expected label<TAB>text, got {len(fields)} field(s)")
        try:
            labels.append(int(fields[label_col]))
        except ValueError:
            raise ValueError(f"{path}:{lineno}: label {fields[label_col]!r} is not an integer") from None
        texts.append(fields[text_col])
    if not texts:
        raise ValueError(f"{path}: no labelled rows")
    return texts, labels


class TextEncoder:
    """Text -> LinkedExample for the classifier: K-BERT segmentation (zh) or wordpieces + linker (en).

    tokenizer: the BERT tokenizer. store: KG store (None: plain text). language: "zh" or "en".
    """

    def __init__(self, tokenizer: Any, store: Any = None, language: str = "zh"):
        self.tokenizer, self.language = tokenizer, language
        self.segmenter = JiebaSubjectSegmenter(tokenizer, store) if language == "zh" else None
        self.linker = None
        if language == "en" and store is not None:
            from kept.kg.linking.linker import EntityLinker

            self.linker = EntityLinker.from_store(store)

    def __call__(self, text: str) -> LinkedExample:
        if self.segmenter is not None:
            return self.segmenter(text)
        if self.linker is not None:
            from kept.data.linked import link_example

            return link_example(text, self.tokenizer, self.linker, "en")
        return LinkedExample(text, self.tokenizer(text, add_special_tokens=False)["input_ids"])


class TreeClassificationCollate:
    """``[(LinkedExample, label)]`` -> a tree batch (see :class:`SentenceTreeBuilder`) + ``labels`` [B]."""

    def __init__(self, builder: SentenceTreeBuilder):
        self.builder = builder

    def __call__(self, items: list[tuple[LinkedExample, int]]) -> dict[str, torch.Tensor]:
        tree = self.builder([ex for ex, _ in items])
        return {**tree.as_dict(), "labels": torch.tensor([label for _, label in items], dtype=torch.long)}


class ClassificationData(TreeSplits):
    """Train/dev/test splits encoded once, batched as sentence trees.

    splits: {"train"|"dev"|"test": (texts, labels)}. encoder: a :class:`TextEncoder`.
    builder: the tree builder (its branch table is None without a KG). batch_size: training
    batch (evaluation uses twice as many). seed: shuffling seed. num_workers: loader workers.
    """

    def __init__(self, splits: dict[str, tuple[list[str], list[int]]], encoder: TextEncoder,
                 builder: SentenceTreeBuilder, batch_size: int = 32, seed: int = 0, num_workers: int = 0):
        super().__init__(TreeClassificationCollate(builder), batch_size, seed, num_workers)
        self.label_values = sorted(set(splits["train"][1]))
        index = {value: i for i, value in enumerate(self.label_values)}
        for name, (texts, labels) in splits.items():
            unknown = sorted(set(labels) - set(index))
            if unknown:
                raise ValueError(f"{name} split has labels {unknown} that the training split lacks")
            self.examples[name] = [(encoder(t), index[y]) for t, y in zip(texts, labels)]

    @property
    def num_labels(self) -> int:
        return len(self.label_values)


class SentenceClassifier(TreeFinetuner):
    """A BertForSequenceClassification read through sentence trees; cross-entropy, accuracy.

    num_labels: classes. vocab_size: tokenizer size. pretrained: local BERT checkpoint directory
    (default None: a fresh BERT of the given sizes: hidden_size 128, num_layers 2, num_heads 2,
    intermediate_size 512, max_position_embeddings 512). dropout: 0.1. lr: peak AdamW rate
    (default 1e-4); weight_decay 0.01; warmup_ratio: share of steps of linear warm-up (0.1),
    then linear decay.
    """

    def __init__(self, num_labels: int, vocab_size: int, pretrained: str | None = None, hidden_size: int = 128,
                 num_layers: int = 2, num_heads: int = 2, intermediate_size: int = 512,
                 max_position_embeddings: int = 512, dropout: float = 0.1, lr: float = 1e-4,
                 weight_decay: float = 0.01, warmup_ratio: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        from transformers import BertForSequenceClassification

        self.model = load_bert(BertForSequenceClassification, num_labels, vocab_size, pretrained, hidden_size,
                               num_layers, num_heads, intermediate_size, max_position_embeddings, dropout)

    def forward_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """float [B, K] class logits of a tree batch."""
        return tree_forward(self.model, batch).logits

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self.forward_logits(batch)                                               # [B, K]
        loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"])
        accuracy = (logits.argmax(-1) == batch["labels"]).float().mean()
        size = len(batch["labels"])
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train", batch_size=size)
        self.log(f"{stage}/acc", accuracy, prog_bar=stage != "train", batch_size=size)
        if stage == "test":   # (predicted, gold) per test sentence, for paired comparisons of runs
            self.test_predictions.append(torch.stack([logits.argmax(-1), batch["labels"]], 1))
        return loss

    def on_test_epoch_start(self) -> None:
        self.test_predictions: list[torch.Tensor] = []


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", choices=["classification", "ner"], default="classification",
                   help="classification: label<TAB>text sentences (default); ner: text_a<TAB>label BIO tags, "
                        "characters and tags space-separated (kept.train.ner)")
    data = p.add_argument_group("data")
    data.add_argument("--data", type=Path, help="directory with train/dev/test .tsv or .tsv.gz (no default)")
    for name in ("train", "dev", "test"):
        data.add_argument(f"--{name}", type=Path, help=f"{name} file (overrides --data; default none)")
    data.add_argument("--limit-train", type=int, default=None, help="use the first N training rows (default: all)")
    data.add_argument("--limit-eval", type=int, default=None, help="use the first N dev and test rows (default: all)")
    data.add_argument("--lang", choices=["zh", "en"], default="zh",
                      help="zh: characters + jieba (default); en (classification only)")
    kg = p.add_argument_group("knowledge (K-BERT)")
    kg.add_argument("--store", dest="kg", type=Path, default=None, help="KG store directory; omit for no knowledge")
    kg.add_argument("--max-branches", dest="max_entities", type=int, default=2,
                    help="branches per word at most (default 2)")
    add_deprecated(kg, "--kg", "--store", dest="kg", type=Path)
    add_deprecated(kg, "--max-entities", "--max-branches", dest="max_entities", type=int)
    kg.add_argument("--no-predicate", action="store_true", help="branch = object only (default: relation+object)")
    kg.add_argument("--branch-seed", type=int, default=0, help="seed of the branch choice (default 0)")
    model = p.add_argument_group("model")
    model.add_argument("--pretrained", type=Path, default=None,
                       help="local BERT checkpoint directory (default: a fresh BERT of the sizes below)")
    model.add_argument("--vocab", type=Path, default=None,
                       help="vocab.txt or tokenizer directory (default: --pretrained's, else kg_data/vocab/)")
    for flag, value in (("--hidden-size", 128), ("--layers", 2), ("--heads", 2), ("--intermediate-size", 512)):
        model.add_argument(flag, type=int, default=value, help=f"fresh BERT only (default {value})")
    model.add_argument("--dropout", type=float, default=0.1, help="fresh BERT only (default 0.1)")
    train = p.add_argument_group("training")
    train.add_argument("--out", type=Path, required=True,
                       help="run directory: metrics.json, model/ (Hugging Face), checkpoints, logs (required)")
    train.add_argument("--max-length", type=int, default=None,
                       help="tree tokens per sentence (default 128; --task ner: 256)")
    train.add_argument("--batch-size", type=int, default=32, help="training batch (default 32; evaluation twice)")
    train.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default 1e-4)")
    train.add_argument("--warmup", type=float, default=0.1, help="warm-up share of the steps (default 0.1)")
    train.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    train.add_argument("--max-steps", type=int, default=-1, help="stop after N steps (default: epochs decide)")
    train.add_argument("--val-every", type=int, default=None, help="evaluate on dev every N steps (default: epoch)")
    train.add_argument("--seed", type=int, default=7, help="initialisation and shuffling seed (default 7)")
    train.add_argument("--workers", dest="num_workers", type=int, default=0, help="DataLoader workers (default 0)")
    add_deprecated(train, "--num-workers", "--workers", dest="num_workers", type=int)
    add_device(train, dest="accelerator")
    add_deprecated(train, "--accelerator", "--device", dest="accelerator", choices=LIGHTNING_DEVICES)
    train.add_argument("--threads", type=int, default=None,
                       help="CPU threads for torch (default: torch's choice; 1 is fastest on a busy machine)")
    add_no_progress(train)



def run(args: argparse.Namespace) -> int:
    """Fine-tune and evaluate (``--task``); returns 0, or 2 with a message for bad input."""
    try:
        if args.task == "ner":
            from kept.train.ner import finetune_ner

            metrics = finetune_ner(args)
        else:
            metrics = finetune(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"kept: error: {exc}", file=sys.stderr)
        return 2
    score = "f1" if args.task == "ner" else "accuracy"
    print(f"dev {score} {metrics[f'dev_{score}']:.4f}  test {score} {metrics[f'test_{score}']:.4f}  "
          f"-> {args.out / 'metrics.json'}, {args.out / 'model'}")
    return 0


def finetune(args: argparse.Namespace) -> dict:
    """The classification run; returns the metrics written to ``args.out/metrics.json``; the selected
    model (with its tokenizer) is saved as a Hugging Face folder in ``args.out/model``."""
    started = time.perf_counter()
    max_length = args.max_length or 128
    splits = limit_splits({name: read_labelled(path) for name, path in split_paths(args).items()}, args)
    tokenizer, store, branches = setup(args)
    builder = SentenceTreeBuilder(tokenizer, branches, max_length, add_sep=True)
    encode_started = time.perf_counter()
    data = ClassificationData(splits, TextEncoder(tokenizer, store, args.lang), builder, args.batch_size,
                              args.seed, args.num_workers)
    encode_s = time.perf_counter() - encode_started
    model = SentenceClassifier(data.num_labels, len(tokenizer), str(args.pretrained) if args.pretrained else None,
                               args.hidden_size, args.layers, args.heads, args.intermediate_size,
                               max(512, max_length), args.dropout, args.lr, warmup_ratio=args.warmup)
    args.out.mkdir(parents=True, exist_ok=True)
    trainer, best = make_trainer(args, "val/acc")
    trainer.fit(model, datamodule=data)
    # the checkpoint with the best dev accuracy; the final model when no validation ran (max_steps < an epoch)
    selected = "best" if best.best_model_path else None
    if selected:  # the dev accuracy that selected the checkpoint
        dev = float(best.best_model_score)
    else:
        dev = trainer.validate(model, datamodule=data, verbose=False)[0]["val/acc"]
    test = trainer.test(model, datamodule=data, ckpt_path=selected, verbose=False, weights_only=True)[0]["test/acc"]
    model.model.config.id2label = {i: str(v) for i, v in enumerate(data.label_values)}   # the file's label values
    model.model.config.label2id = {str(v): i for i, v in enumerate(data.label_values)}
    save_hf_model(model.model, tokenizer, args.out / "model")                 # the weights just tested
    np.save(args.out / "test_predictions.npy", torch.cat(model.test_predictions).cpu().numpy())   # [N, 2] class indices
    branch_tokens = [int(builder([ex for ex, _ in data.examples["dev"][i : i + 256]]).is_branch.sum())
                     for i in range(0, min(len(data.examples["dev"]), 1024), 256)]
    metrics = {"task": "classification", "dev_accuracy": dev, "test_accuracy": test,
               "evaluated": str(best.best_model_path or "final model"), "model": str(args.out / "model"),
               "steps": trainer.global_step, "train_examples": len(data.examples["train"]),
               "dev_examples": len(data.examples["dev"]), "test_examples": len(data.examples["test"]),
               "labels": data.label_values, "kg": str(args.kg) if args.kg else None,
               "branch_tokens_per_dev_sentence": float(np.sum(branch_tokens) / min(len(data.examples["dev"]), 1024)),
               "encode_seconds": encode_s, "seconds": time.perf_counter() - started}
    return write_metrics(metrics, args)


def main(argv: list[str] | None = None) -> int:
    """``kept finetune`` on its own (``kept finetune`` dispatches here)."""
    parser = argparse.ArgumentParser(prog="kept finetune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    from kept.runtime import quiet_library_notices

    quiet_library_notices()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    quiet_progress(args.no_progress)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
