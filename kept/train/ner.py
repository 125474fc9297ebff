"""``kept finetune --task ner``: BIO token classification with or without K-BERT knowledge.

    kept finetune --task ner --data ../shared/data/corpus/zh/medical_ner --kg runs/stores/medical \\
        --out runs/finetune/medical_ner-medical --epochs 3 --lr 1e-3 --threads 1

Reads ``text_a<TAB>label`` files (``train``, ``dev``, ``test`` as ``.tsv`` / ``.tsv.gz``; the K-BERT
medical_ner layout): the text is space-separated characters, the label as many space-separated BIO
tags (``O``, ``B-TYPE``, ``I-TYPE``); a header line naming the columns is recognised, without one the
columns are ``text_a``, ``label``. Each sentence goes through the K-BERT tree builder of
:mod:`kept.fusion.kbert.tree` exactly as for classification (jieba with the store's subjects, one token
per character); the tags label the sentence (trunk) tokens, and ``[CLS]``, ``[SEP]``, knowledge-branch
tokens and padding get label -100: no loss, no prediction. A character cut off by ``--max-length``
counts as predicted ``O``, so the scores are always over every gold entity of the split.

Scores are entity-level precision, recall and F1 with exact span match (``seqeval``, its default
CoNLL-2000 ``conlleval`` rules: an entity is a maximal ``B-X I-X ...`` run, or an ``I-X`` run that
starts one; a predicted entity counts only when its type, start and end all equal a gold one's).
The checkpoint with the best dev F1 is kept, scored on dev and test (``metrics.json``; per test
sentence the entity tp/fp/fn in ``test_entity_counts.npy``) and saved as a Hugging Face
``BertForTokenClassification`` folder (``model/``, tags in ``config.id2label``).
"""

from __future__ import annotations

import argparse
import re
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kept.data.examples import LinkedExample
from kept.fusion.kbert.data import JiebaSubjectSegmenter
from kept.fusion.kbert.model import tree_forward
from kept.fusion.kbert.tree import SentenceTreeBuilder
from kept.train.finetune_common import (
    TreeFinetuner,
    TreeSplits,
    limit_splits,
    load_bert,
    make_trainer,
    save_hf_model,
    setup,
    split_paths,
    text_lines,
    write_metrics,
)

IGNORE = -100
TAG = re.compile(r"O|[BI]-\S+")


def read_tagged(path: str | Path) -> tuple[list[list[str]], list[list[str]]]:
    """``(sentences, tags)`` of a ``text_a<TAB>label`` BIO file: per row the characters and their tags.

    A first line whose fields are all column names (``text_a``/``text``, ``label``) is a header and
    sets the column order. ValueError naming the file and line of a row without two fields, with a
    token that is not one non-space character, with as many tags as characters not, or with a tag
    that is not ``O``/``B-X``/``I-X``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}")
    sentences, tags = [], []
    text_col, label_col = 0, 1
    for lineno, line in text_lines(path):
        fields = line.rstrip("\r\n").split("\t")
        names = [f.strip().lower() for f in fields]
        if lineno == 1 and "label" in names and ("text_a" in names or "text" in names):
            label_col, text_col = names.index("label"), names.index("text_a" if "text_a" in names else "text")
            continue
        if not line.strip():
            continue
        if len(fields) <= max(text_col, label_col):
            raise ValueError(f"{path}:{lineno}: expected text_a<TAB>label, got {len(fields)} field(s)")
        chars, row_tags = fields[text_col].split(" "), fields[label_col].strip().split(" ")
        bad = next((c for c in chars if len(c) != 1 or c.isspace()), None)
        if bad is not None:
            raise ValueError(f"{path}:{lineno}: token {bad!r} is not one character (text_a must be "
                             "space-separated characters)")
        if len(chars) != len(row_tags):
            raise ValueError(f"{path}:{lineno}: {len(chars)} characters but {len(row_tags)} tags")
        wrong = next((t for t in row_tags if not TAG.fullmatch(t)), None)
        if wrong is not None:
            raise ValueError(f"{path}:{lineno}: tag {wrong!r} is not O, B-TYPE or I-TYPE")
        sentences.append(chars)
        tags.append(row_tags)
    if not sentences:
        raise ValueError(f"{path}: no tagged rows")
    return sentences, tags


def entity_counts(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> np.ndarray:
    """int [S, 3] per sentence: true positives, false positives, false negatives of exact-span entities
    (seqeval's entity extraction). Summed over any subset of sentences, ``2 tp / (2 tp + fp + fn)`` is
    that subset's micro F1: what a bootstrap over sentences resamples."""
    from seqeval.metrics.sequence_labeling import get_entities

    out = np.zeros((len(gold), 3), dtype=np.int64)
    for k, (g, p) in enumerate(zip(gold, predicted)):
        true, found = set(get_entities(list(g))), set(get_entities(list(p)))
        out[k] = len(true & found), len(found - true), len(true - found)
    return out


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Entity-level ``precision``, ``recall``, ``f1`` (micro over types, exact span match, seqeval's
    default rules) and ``per_type`` ``{type: {precision, recall, f1, support}}``; ``entities`` = gold count."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    gold, predicted = [list(s) for s in gold], [list(s) for s in predicted]
    if [len(s) for s in gold] != [len(s) for s in predicted]:
        raise ValueError("gold and predicted tag sequences differ in length")
    with warnings.catch_warnings():   # numpy's "mean of empty slice" when a split has no entity at all
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    per_type = {name: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                       "f1": float(v["f1-score"]), "support": int(v["support"])}
                for name, v in report.items() if not name.endswith(" avg")}
    return {"precision": float(precision_score(gold, predicted, zero_division=0)),
            "recall": float(recall_score(gold, predicted, zero_division=0)),
            "f1": float(f1_score(gold, predicted, zero_division=0)),
            "entities": sum(v["support"] for v in per_type.values()), "per_type": per_type}


class TreeTaggingCollate:
    """``[(LinkedExample, tag ids int [n])]`` -> a tree batch (:class:`SentenceTreeBuilder`) with ``labels``
    [B, L] (the tag of each sentence token; -100 on [CLS], [SEP], branch tokens and padding), ``tags``
    [B, N + 2] (every gold tag at its sentence index 1..n, -100 elsewhere) and ``lengths`` [B]."""

    def __init__(self, builder: SentenceTreeBuilder):
        self.builder = builder

    def __call__(self, items: Sequence[tuple[LinkedExample, np.ndarray]]) -> dict[str, torch.Tensor]:
        tree = self.builder([ex for ex, _ in items])
        lengths = np.asarray([len(t) for _, t in items], dtype=np.int64)
        grid = np.full((len(items), int(lengths.max()) + 2), IGNORE, dtype=np.int64)        # [B, N + 2]
        rows = np.repeat(np.arange(len(items)), lengths)
        grid[rows, np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths) + 1] = \
            np.concatenate([t for _, t in items])
        tags = torch.from_numpy(grid)
        index = tree.sentence_index                                                          # [B, L], -1 off-trunk
        labels = torch.where(index >= 0, tags.gather(1, index.clamp(min=0)), IGNORE)
        return {**tree.as_dict(), "labels": labels, "tags": tags, "lengths": torch.from_numpy(lengths)}


class TaggingData(TreeSplits):
    """Train/dev/test BIO splits encoded once, batched as sentence trees.

    splits: {"train"|"dev"|"test": (sentences, tags)} (:func:`read_tagged`). segmenter: a
    :class:`JiebaSubjectSegmenter` (its store decides the entity words; None store: characters only).
    builder: the tree builder (its branch table is None without a KG). batch_size: training batch
    (evaluation twice as many; default 32). seed: shuffling seed (default 0). num_workers: default 0.
    The tag set is ``O``, then ``B-X``, ``I-X`` for every entity type X of any split, types sorted
    (a type missing from training is never predicted, so its entities count as missed).
    """

    def __init__(self, splits: dict[str, tuple[list[list[str]], list[list[str]]]],
                 segmenter: JiebaSubjectSegmenter, builder: SentenceTreeBuilder, batch_size: int = 32,
                 seed: int = 0, num_workers: int = 0):
        super().__init__(TreeTaggingCollate(builder), batch_size, seed, num_workers)
        types = sorted({t[2:] for _, tags in splits.values() for row in tags for t in row if t != "O"})
        self.tag_names = ["O", *(f"{bi}-{name}" for name in types for bi in "BI")]
        index = {name: i for i, name in enumerate(self.tag_names)}
        for name, (sentences, tags) in splits.items():
            encoded = []
            for k, (chars, row) in enumerate(zip(sentences, tags)):
                example = segmenter("".join(chars))
                if len(example.input_ids) != len(row):
                    raise ValueError(f"{name} split, sentence {k + 1}: {len(example.input_ids)} tokens for "
                                     f"{len(row)} tags")
                encoded.append((example, np.asarray([index[t] for t in row], dtype=np.int64)))
            self.examples[name] = encoded


class TokenTagger(TreeFinetuner):
    """A BertForTokenClassification read through sentence trees: token cross-entropy on the trunk,
    entity-level F1 per evaluation epoch (logged as ``val/f1``, ``test/f1``; details in ``scores``).

    tag_names: the tags, index = class. vocab_size: tokenizer size. pretrained: local BERT checkpoint
    directory (default None: a fresh BERT: hidden_size 128, num_layers 2, num_heads 2,
    intermediate_size 512, max_position_embeddings 512, dropout 0.1). lr: peak AdamW rate (default
    1e-4); weight_decay 0.01; warmup_ratio 0.1 of the steps, then linear decay.
    """

    def __init__(self, tag_names: list[str], vocab_size: int, pretrained: str | None = None, hidden_size: int = 128,
                 num_layers: int = 2, num_heads: int = 2, intermediate_size: int = 512,
                 max_position_embeddings: int = 512, dropout: float = 0.1, lr: float = 1e-4,
                 weight_decay: float = 0.01, warmup_ratio: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        from transformers import BertForTokenClassification

        self.model = load_bert(BertForTokenClassification, len(tag_names), vocab_size, pretrained, hidden_size,
                               num_layers, num_heads, intermediate_size, max_position_embeddings, dropout,
                               id2label=dict(enumerate(tag_names)),
                               label2id={name: i for i, name in enumerate(tag_names)})
        self.tag_array = np.asarray(tag_names, dtype=object)
        self.scores: dict[str, dict] = {}
        self.counts: dict[str, np.ndarray] = {}            # per split: entity_counts of the last evaluation
        self._outputs: list[tuple[list[list[str]], list[list[str]]]] = []

    def forward_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """float [B, L, K] tag logits of a tree batch."""
        return tree_forward(self.model, batch).logits

    def predict_tags(self, batch: dict[str, torch.Tensor], logits: torch.Tensor | None = None) -> torch.Tensor:
        """int [B, N + 2] the predicted tag of every sentence token at its sentence index (``O`` = 0 where
        the token is not in the tree, cut by max_length; -100 outside 1..n), aligned with ``batch["tags"]``."""
        logits = self.forward_logits(batch) if logits is None else logits
        tags = batch["tags"]
        out = torch.zeros_like(tags)
        trunk = batch["labels"] != IGNORE                                                 # [B, L]
        rows = torch.nonzero(trunk)[:, 0]
        out[rows, batch["sentence_index"][trunk]] = logits.argmax(-1)[trunk]
        return out.masked_fill(tags == IGNORE, IGNORE)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self.forward_logits(batch)                                               # [B, L, K]
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(),
                                                 ignore_index=IGNORE)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train", batch_size=len(batch["lengths"]))
        if stage != "train":
            predicted, gold = self.predict_tags(batch, logits).cpu().numpy(), batch["tags"].cpu().numpy()
            for p, g, n in zip(predicted, gold, batch["lengths"].tolist()):
                self._outputs.append((self.tag_array[g[1 : n + 1]].tolist(), self.tag_array[p[1 : n + 1]].tolist()))
        return loss

    def _epoch_end(self, stage: str) -> None:
        gold, predicted = [g for g, _ in self._outputs], [p for _, p in self._outputs]
        self._outputs = []
        scores = entity_scores(gold, predicted)
        self.scores[stage] = scores
        self.counts[stage] = entity_counts(gold, predicted)
        for key in ("precision", "recall", "f1"):
            self.log(f"{stage}/{key}", scores[key], prog_bar=key == "f1")

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")


def finetune_ner(args: argparse.Namespace) -> dict:
    """The NER run of ``kept finetune --task ner`` (the options of :func:`kept.train.finetune.add_arguments`);
    returns the metrics written to ``args.out/metrics.json``; the model of the best dev F1 (the final
    one when no validation ran) is saved with its tokenizer to ``args.out/model``."""
    if args.lang != "zh":
        raise ValueError("--task ner reads characters (K-BERT's Chinese NER): use --lang zh")
    started = time.perf_counter()
    max_length = args.max_length or 256
    splits = limit_splits({name: read_tagged(path) for name, path in split_paths(args).items()}, args)
    tokenizer, store, branches = setup(args)
    builder = SentenceTreeBuilder(tokenizer, branches, max_length, add_sep=True)
    encode_started = time.perf_counter()
    data = TaggingData(splits, JiebaSubjectSegmenter(tokenizer, store), builder, args.batch_size, args.seed,
                       args.num_workers)
    encode_s = time.perf_counter() - encode_started
    model = TokenTagger(data.tag_names, len(tokenizer), str(args.pretrained) if args.pretrained else None,
                        args.hidden_size, args.layers, args.heads, args.intermediate_size, max(512, max_length),
                        args.dropout, args.lr, warmup_ratio=args.warmup)
    args.out.mkdir(parents=True, exist_ok=True)
    trainer, best = make_trainer(args, "val/f1")
    fit_started = time.perf_counter()
    trainer.fit(model, datamodule=data)
    fit_s = time.perf_counter() - fit_started
    selected = "best" if best.best_model_path else None
    trainer.validate(model, datamodule=data, ckpt_path=selected, verbose=False, weights_only=True)
    trainer.test(model, datamodule=data, ckpt_path=selected, verbose=False, weights_only=True)
    save_hf_model(model.model, tokenizer, args.out / "model")                 # the weights just scored
    np.save(args.out / "test_entity_counts.npy", model.counts["test"])        # [S, 3] tp, fp, fn per sentence
    dev_trees = [data.collate(data.examples["dev"][i : i + 256]) for i in range(0, len(data.examples["dev"]), 256)]
    branch_tokens = sum(int(t["is_branch"].sum()) for t in dev_trees)
    cut = sum(int((t["tags"] != IGNORE).sum() - (t["labels"] != IGNORE).sum()) for t in dev_trees)
    dev, test = model.scores["val"], model.scores["test"]
    metrics = {"task": "ner", "dev_f1": dev["f1"], "dev_precision": dev["precision"], "dev_recall": dev["recall"],
               "test_f1": test["f1"], "test_precision": test["precision"], "test_recall": test["recall"],
               "dev": dev, "test": test, "evaluated": str(best.best_model_path or "final model"),
               "model": str(args.out / "model"), "steps": trainer.global_step, "tags": data.tag_names,
               **{f"{name}_sentences": len(data.examples[name]) for name in ("train", "dev", "test")},
               "kg": str(args.kg) if args.kg else None,
               "branch_tokens_per_dev_sentence": branch_tokens / len(data.examples["dev"]),
               "dev_characters_cut_by_max_length": cut, "max_length": max_length,
               "encode_seconds": encode_s, "fit_seconds": fit_s, "seconds": time.perf_counter() - started}
    return write_metrics(metrics, args)
