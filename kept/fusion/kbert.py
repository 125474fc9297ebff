"""K-BERT on a stock Hugging Face BERT: the tree mask, MLM pretraining, export and the probing scorer.

The sentence tree (:mod:`kept.fusion.kbert_tree`) reaches the model through two
inputs every transformers 5.x ``BertModel`` accepts: ``position_ids`` (the soft
positions) and a 4-D attention mask ``[batch, 1, seq, seq]`` made from the visible
matrix (:func:`tree_attention_mask`), applied in every layer. No layer is changed,
so any BERT checkpoint (``BertForMaskedLM``, ``BertForSequenceClassification``)
runs K-BERT, and a K-BERT export is a stock ``BertForMaskedLM`` directory.

Pretraining (``kept pretrain --method kbert``) is masked-LM over the *sentence*
tokens of the tree: the sentence is masked first, exactly as the ``mlm`` baseline
(or at the word/entity level, ``masking``), then the tree is built around the
masked sentence; branch tokens are never masked nor predicted. Branches hang off
the entity spans of the linked corpus even when the entity itself is masked: the
model learns to restore a word from the facts about it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kept.data.examples import LinkedCorpus, LinkedExample
from kept.fusion.kbert_tree import BranchTable, CharVocab, SentenceTreeBuilder, build_trees
from kept.kg.store import KGStore, open_store
from kept.masking.ernie import IGNORE_INDEX, UnitMaskingCollator, mask_units
from kept.train.data import PretrainDataModule, load_tokenizer
from kept.train.mlm import MaskedLMModule, masked_lm_loss

ROOT = Path(__file__).resolve().parents[2]


class JiebaSubjectSegmenter:
    """Chinese text -> LinkedExample the K-BERT way: jieba words, one token per character.

    tokenizer: a Chinese BERT tokenizer (characters are looked up in its vocabulary).
    store: the KG store whose subject labels (entities with out-edges) become jieba user
    words; a word equal to a subject label is an entity span (default None: no KG; the
    text is split into characters only, without jieba). Whitespace is dropped.
    """

    def __init__(self, tokenizer: Any, store: KGStore | str | Path | None = None):
        self.chars = CharVocab(tokenizer)
        self.subjects: dict[str, int] = {}
        self.jieba = None
        if store is not None:
            import logging

            import jieba

            store = store if isinstance(store, KGStore) else open_store(store)
            has_out = np.diff(np.asarray(store.out_indptr)) > 0
            for entity_id, label in store.db.execute("SELECT id, label FROM entities WHERE label IS NOT NULL"):
                if has_out[entity_id] and label not in self.subjects:
                    self.subjects[label] = entity_id
            jieba.setLogLevel(logging.WARNING)
            self.jieba = jieba.Tokenizer()
            for label in self.subjects:
                self.jieba.add_word(label)

    def words(self, text: str) -> list[str]:
        """The jieba words of ``text`` (whitespace-only words dropped)."""
        if self.jieba is None:
            return [c for c in text if not c.isspace()]
        return [w for w in self.jieba.cut(text) if not w.isspace()]

    def __call__(self, text: str) -> LinkedExample:
        ids, char_index = self.chars.encode(text)                                  # [n] one token per character
        offsets = np.stack([char_index, char_index + 1], axis=1)
        if self.jieba is None:
            return LinkedExample(text, ids, offsets, word_spans=offsets * 0 + np.arange(len(ids))[:, None] + [0, 1])
        words = self.words(text)
        points = self.chars.codepoints("".join(words))
        owner = np.repeat(np.arange(len(words)), [len(w) for w in words])            # word of each character
        counts = np.bincount(owner[~self.chars.is_space[points]], minlength=len(words))   # tokens per word
        ends = np.cumsum(counts)
        if ends[-1:].sum() != len(ids):
            raise ValueError(f"jieba words do not cover the text {text[:40]!r}")
        entity = np.asarray([self.subjects.get(w, -1) for w in words], dtype=np.int64)
        spans = np.stack([ends - counts, ends], axis=1)[counts > 0]
        entity = entity[counts > 0]
        linked = entity >= 0
        return LinkedExample(text, ids, offsets, word_spans=spans, entity_spans=spans[linked],
                             entity_ids=entity[linked], entity_scores=np.ones(int(linked.sum()), np.float32))


def tree_attention_mask(visible_matrix: torch.Tensor, attn_implementation: str = "sdpa",
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 4-D attention mask ``[B, 1, L, L]`` a Hugging Face BERT applies in every layer.

    visible_matrix: bool [B, L, L], token i may attend to token j.
    attn_implementation: the model's ``config._attn_implementation``: "sdpa" takes the boolean
        mask (True = attend), "eager" adds it to the scores, so it gets 0 / dtype-min.
    dtype: float type of the eager additive mask (default float32).
    Rows that see nothing (padding) attend to themselves only, so their softmax is defined;
    no real token ever sees padding.
    """
    if attn_implementation not in ("sdpa", "eager"):
        raise ValueError(f"K-BERT needs a model whose attention takes a 4-D mask (sdpa or eager); this one uses "
                         f"{attn_implementation!r}: load it with attn_implementation='sdpa'")
    length = visible_matrix.shape[-1]
    diagonal = torch.eye(length, dtype=torch.bool, device=visible_matrix.device)                   # [L, L]
    sees_nothing = ~visible_matrix.any(dim=-1, keepdim=True)                                        # [B, L, 1]
    allowed = (visible_matrix | (sees_nothing & diagonal)).unsqueeze(1)                             # [B, 1, L, L]
    if attn_implementation == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed,
                                                                                       torch.finfo(dtype).min)


def tree_forward(model: torch.nn.Module, batch: dict[str, torch.Tensor], **kwargs: Any):
    """Run a Hugging Face BERT model on a tree batch (``input_ids``, ``position_ids``, ``visible_matrix``,
    optional ``token_type_ids``); extra keyword arguments go to the model."""
    mask = tree_attention_mask(batch["visible_matrix"], model.config._attn_implementation, model.dtype)
    return model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=batch["position_ids"],
                 token_type_ids=batch.get("token_type_ids"), **kwargs)


class KBertMaskingCollator:
    """Mask the sentences, then grow their trees: a batch for K-BERT masked-LM.

    masking: the :class:`UnitMaskingCollator` that pads (``[CLS] text [SEP]``, text cut at
        ``max_length - 2``) and masks sentences. builder: the tree builder (branches, max_length).
    Same call as the masking collator: ``(examples, generator=None, level=None)``. Returns
    ``input_ids``, ``position_ids``, ``token_type_ids``, ``attention_mask`` [B, L],
    ``visible_matrix`` [B, L, L], ``is_branch`` [B, L] and ``labels`` [B, L] (-100 on branches).
    """

    def __init__(self, masking: UnitMaskingCollator, builder: SentenceTreeBuilder):
        self.masking, self.builder = masking, builder

    def __call__(self, examples: Sequence[LinkedExample], generator: torch.Generator | None = None,
                 level: str | None = None) -> dict[str, torch.Tensor]:
        m = self.masking
        input_ids, lengths = m.pad(examples)                                  # [B, Ls], [B] text tokens
        unit_ids = m.unit_ids(examples, input_ids, lengths, level)
        masked, labels = mask_units(torch.from_numpy(input_ids), torch.from_numpy(unit_ids), m.vocab, m.mask_prob,
                                    m.max_predictions, generator or m._generator,
                                    replace_per_unit=m.replace_per_unit)                   # [B, Ls] each
        sentences = [row[: n + 2] for row, n in zip(masked.numpy(), lengths)]
        fits = [ex.entity_spans[:, 1] <= n for ex, n in zip(examples, lengths)]
        tree = build_trees(sentences, [ex.entity_spans[f] + 1 for ex, f in zip(examples, fits)],
                           [ex.entity_ids[f] for ex, f in zip(examples, fits)], self.builder.branches,
                           self.builder.max_length, m.vocab.pad_id, self.builder.pad_to_max_length)
        index = tree.sentence_index                                           # [B, L] sentence token or -1
        tree_labels = torch.where(index >= 0, labels.gather(1, index.clamp(min=0)), IGNORE_INDEX)
        return {**tree.as_dict(), "labels": tree_labels}


class KBertDataModule(PretrainDataModule):
    """K-BERT masked-LM batches from a linked corpus and a KG store.

    Args (beyond :class:`~kept.train.data.PretrainDataModule`'s corpus, vocab, masking,
    batch_size, max_length, mask_prob, num_workers, seed, val_fraction):
        store: the KG store the corpus was linked to (entity ids are its ids).
        max_entities: branches per entity span at most (default 2).
        with_predicate: a branch is relation + object label (default True) or the object only.
        language: how labels are tokenised: "en" wordpieces (default) or "zh" characters.
        pad_to_max_length: pad trees to max_length instead of the longest (default False).
    ``max_length`` bounds the tree (sentence + branches), sentence cut at max_length - 2.
    """

    def __init__(self, corpus: str, vocab: str, store: str, max_entities: int = 2, with_predicate: bool = True,
                 language: str = "en", masking: str = "token", batch_size: int = 32, max_length: int = 128,
                 mask_prob: float = 0.15, num_workers: int = 0, seed: int = 0, val_fraction: float = 0.02,
                 pad_to_max_length: bool = False):
        super().__init__(corpus, vocab, masking, batch_size, max_length, mask_prob, num_workers, seed, val_fraction)
        self.branches = BranchTable(store, self.tokenizer, language, max_entities, with_predicate, seed)
        builder = SentenceTreeBuilder(self.tokenizer, self.branches, max_length, add_sep=True,
                                      pad_to_max_length=pad_to_max_length)
        self.collator = KBertMaskingCollator(self.collator, builder)

    def kbert_options(self) -> dict:
        """What a reader of the trained model needs to rebuild the same trees (kept.json)."""
        return {"store": str(self.branches.store_path.resolve()), **self.branches.options(),
                "max_length": self.hparams.max_length, "add_sep": True}


class KBertModule(MaskedLMModule):
    """K-BERT masked-LM pretraining of a stock ``BertForMaskedLM``.

    Args: as :class:`~kept.train.mlm.MaskedLMModule` (vocab_size, pretrained, model sizes for a
    fresh model, lr, weight_decay, warmup_steps, seed). The tree options come from the data
    module (:meth:`KBertDataModule.kbert_options`) when training starts, are kept in checkpoints
    and written to ``kept.json`` by :meth:`export_hf`.
    """

    kbert_options: dict = {}  # replaced (never mutated) in setup / on_load_checkpoint

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if hasattr(datamodule, "kbert_options"):
            self.kbert_options = datamodule.kbert_options()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["kbert_options"] = self.kbert_options

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.kbert_options = checkpoint.get("kbert_options", {})

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": masked-LM cross-entropy over the masked sentence tokens of the trees}``.

        The vocabulary head runs on the predicted positions only (~15% of the sentence tokens).
        """
        hidden = tree_forward(self.model.bert, batch).last_hidden_state                 # [B, L, H]
        labels = batch["labels"]                                                         # [B, L]
        predicted = labels != IGNORE_INDEX
        logits = self.model.cls(hidden[predicted])                                       # [P, V]
        return {"loss": masked_lm_loss(logits.unsqueeze(0), labels[predicted].unsqueeze(0))}

    def export_hf(self, out: str | Path, tokenizer: Any) -> Path:
        """A stock BertForMaskedLM directory (+ tokenizer) with ``kept.json`` = the method and tree options."""
        out = Path(out)
        self.model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        info = {"method": "kbert", "max_entities": 2, "with_predicate": True, "branch_seed": 0, "language": "en",
                "max_length": 128, "add_sep": True, "store": None, **self.kbert_options}
        (out / "kept.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        return out


class KBertScorer:
    """Cloze scoring with knowledge injected at probe time (the probing contract of kept.probe).

    model: a BertForMaskedLM. tokenizer: its tokenizer. branches: the branch table (None:
    no knowledge). max_length / add_sep: the tree options (defaults 128 / True).
    batch_size: examples per forward pass (default 32). device: torch device (default "cpu").
    A query whose branches would push one of its [MASK]s past ``max_length`` is scored without
    branches (K-BERT's truncation would otherwise cut the very token asked for); ``fallbacks``
    counts them.
    """

    def __init__(self, model: Any, tokenizer: Any, branches: BranchTable | None, max_length: int = 128,
                 add_sep: bool = True, batch_size: int = 32, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.tokenizer, self.device, self.batch_size = tokenizer, device, batch_size
        self.builder = SentenceTreeBuilder(tokenizer, branches, max_length, add_sep=add_sep)
        self.plain_builder = SentenceTreeBuilder(tokenizer, None, max_length, add_sep=add_sep)
        self.fallbacks = 0

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, store: KGStore | str | Path | None = None,
                        device: str = "cpu") -> KBertScorer:
        """Load a ``kept pretrain --method kbert`` export. store: the KG store to take branches from
        (default: the store recorded in kept.json)."""
        from transformers import AutoTokenizer, BertForMaskedLM

        model_dir = Path(model_dir)
        info_path = model_dir / "kept.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        if info.get("method") != "kbert":
            raise ValueError(f"{model_dir} is not a K-BERT export (kept.json method: {info.get('method')!r})")
        store = store if store is not None else info.get("store")
        if store is None:
            raise ValueError(f"{model_dir}: K-BERT needs the KG store to inject branches; pass store=")
        if not isinstance(store, KGStore) and not (Path(store) / "meta.json").exists():
            raise FileNotFoundError(f"K-BERT store {store} (from {info_path}) is not a KG store directory")
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = BertForMaskedLM.from_pretrained(model_dir, local_files_only=True, attn_implementation="sdpa")
        branches = BranchTable(store, tokenizer, info.get("language", "en"), info.get("max_entities", 2),
                               info.get("with_predicate", True), info.get("branch_seed", 0))
        # at probe time a tree may use the model's whole position range, not only the training length
        max_length = max(info.get("max_length", 128), model.config.max_position_embeddings)
        return cls(model, tokenizer, branches, max_length, info.get("add_sep", True), device=device)

    @torch.no_grad()
    def mask_log_probs(self, examples: list[LinkedExample]) -> list[torch.Tensor]:
        """For each example, float [k, V]: log-softmax over the vocabulary at its k [MASK] tokens, in order."""
        out: list[torch.Tensor] = []
        for first in range(0, len(examples), self.batch_size):
            chunk = examples[first : first + self.batch_size]
            scores = self._score(chunk, self.builder)
            for b in [b for b, x in enumerate(scores) if x is None]:             # a [MASK] cut by branches
                self.fallbacks += 1
                scores[b] = self._score([chunk[b]], self.plain_builder)[0]
                if scores[b] is None:
                    ex = chunk[b]
                    raise ValueError(f"example {first + b}: its [MASK] tokens do not fit in max_length "
                                     f"{self.builder.max_length} even without branches (text: {ex.text[:60]!r})")
            out.extend(scores)
        return out

    def _score(self, chunk: list[LinkedExample], builder: SentenceTreeBuilder) -> list[torch.Tensor | None]:
        """[k, V] log-probs per example at its [MASK]s; None where a [MASK] did not fit in the tree."""
        mask_id = self.tokenizer.mask_token_id
        tree = builder(chunk)
        batch = {k: v.to(self.device) for k, v in tree.as_dict().items()}
        logits = tree_forward(self.model, batch).logits.float()                         # [B, L, V]
        at_mask = (tree.input_ids == mask_id) & ~tree.is_branch                          # [B, L]
        out: list[torch.Tensor | None] = []
        for b, ex in enumerate(chunk):
            columns = torch.nonzero(at_mask[b]).squeeze(1)
            if len(columns) != int((ex.input_ids == mask_id).sum()):
                out.append(None)
            else:
                out.append(torch.log_softmax(logits[b, columns.to(self.device)], dim=-1).cpu())
        return out


def kbert_training_batch(batch_size: int, seq_length: int, corpus: str | Path | None = None,
                         store: str | Path | None = None, vocab: str | Path | None = None, seed: int = 0,
                         max_entities: int = 2, with_predicate: bool = True) -> dict[str, torch.Tensor]:
    """One K-BERT masked-LM training batch from real data, every tree padded to ``seq_length``.

    corpus / store / vocab: a linked corpus, its KG store and vocabulary (defaults: the demo
    workspace's T-REx corpus ``runs/demo/corpus/trex``, store ``runs/demo/stores/trex`` and
    ``kg_data/vocab/bert-base-uncased-vocab.txt``). seed: picks the examples and the masks.
    For benchmarks: ``KBertModule(...).losses(batch)`` is one training step's forward.
    """
    corpus = Path(corpus or ROOT / "runs" / "demo" / "corpus" / "trex")
    store = Path(store or ROOT / "runs" / "demo" / "stores" / "trex")
    vocab = Path(vocab or ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt")
    for path, what in ((corpus, "linked corpus"), (store, "KG store")):
        if not (path / "meta.json").exists():
            raise FileNotFoundError(f"no {what} at {path} (run `kept demo` or pass one)")
    linked = LinkedCorpus(corpus)
    rows = np.resize(np.random.default_rng(seed).permutation(len(linked)), batch_size)   # repeats if too few
    tokenizer = load_tokenizer(vocab)
    branches = BranchTable(store, tokenizer, "en", max_entities, with_predicate, seed)
    masking = UnitMaskingCollator(tokenizer, max_length=seq_length, level="token", seed=seed)
    collate = KBertMaskingCollator(masking, SentenceTreeBuilder(tokenizer, branches, seq_length,
                                                                pad_to_max_length=True))
    return collate([linked[int(i)] for i in rows], generator=torch.Generator().manual_seed(seed))
