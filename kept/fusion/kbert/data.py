"""K-BERT pretraining data: Chinese subject segmentation, masking before the tree, the data module and a benchmark batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kept.data.examples import LinkedCorpus, LinkedExample
from kept.data.tokenizer import load_tokenizer
from kept.fusion.kbert.branches import BranchTable, CharVocab
from kept.fusion.kbert.tree import SentenceTreeBuilder, build_trees
from kept.kg.store import KGStore, open_store
from kept.masking.ernie import IGNORE_INDEX, UnitMaskingCollator, mask_units
from kept.train.data import PretrainDataModule

ROOT = Path(__file__).resolve().parents[3]


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



class KBertMaskingCollator:
    """Mask the sentences, then grow their trees: a batch for K-BERT masked-LM.

    masking: the :class:`UnitMaskingCollator` that pads (``[CLS] text [SEP]``, text cut at
        ``max_length - 2``) and masks sentences. builder: the tree builder (branches, max_length).
    Same call as the masking collator: ``(examples, generator=None, level=None)``. Returns
    ``input_ids``, ``position_ids``, ``token_type_ids``, ``attention_mask`` [B, L],
    ``visible_matrix`` [B, L, L], ``is_branch`` [B, L] and ``labels`` [B, L] (-100 on branches).
    """

    def __init__(self, masking: UnitMaskingCollator, builder: SentenceTreeBuilder, branch_object_prob: float = 0.0,
                 branch_swap_prob: float = 0.0):
        for name, value in (("branch_object_prob", branch_object_prob), ("branch_swap_prob", branch_swap_prob)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.masking, self.builder, self.branch_object_prob = masking, builder, branch_object_prob
        self.branch_swap_prob = branch_swap_prob

    def _swap_objects(self, tree_ids: torch.Tensor, tree_labels: torch.Tensor, tree, swaps: list) -> None:
        """Counterfactual branches, in place: the masked object (row, start, end, triple) and its branch copy
        become another object of the same relation with as many tokens, so only the branch tells it."""
        table = self.builder.branches
        triples = np.asarray(table.store.triples)
        for row, start, end, triple, u in swaps:
            same = np.flatnonzero(triples[:, 1] == triples[triple, 1])
            tails = np.unique(triples[same, 2].astype(np.int64))
            starts, lengths = table.entity_tokens(tails)
            fits = np.flatnonzero((lengths == end - start) & (tails != triples[triple, 2]))
            if not len(fits):
                continue
            pick = fits[int(u * len(fits)) % len(fits)]
            new = torch.from_numpy(table.token_pool[starts[pick] : starts[pick] + lengths[pick]].copy())
            old = tree_labels[row][(tree.sentence_index[row] >= start) & (tree.sentence_index[row] < end)]
            cols = torch.nonzero((tree.sentence_index[row] >= start) & (tree.sentence_index[row] < end)).squeeze(1)
            if len(cols) != end - start:
                continue
            branch_cols = torch.nonzero(tree.is_branch[row]).squeeze(1)
            ids = tree_ids[row, branch_cols]
            found = False
            for k in range(len(branch_cols) - len(old) + 1):       # the branch copy of the old object
                if torch.equal(ids[k : k + len(old)], old):
                    tree_ids[row, branch_cols[k : k + len(old)]] = new
                    found = True
            if found:                                               # (a branch cut by max_length: no swap)
                tree_labels[row, cols] = new

    def branch_object_matches(self, examples: Sequence[LinkedExample], sentences: Sequence[np.ndarray],
                              with_triples: bool = False) -> list[tuple[int, ...]]:
        """``(row, start, end)`` sentence-token spans (``[CLS]`` = 0) equal to the object label of a branch
        hung on *another* entity span of the same sentence: tokens a [MASK] can copy from a branch
        (two hops: [MASK] -> the branch's word -> the branch). ``with_triples``: 4-tuples, the store
        triple row of the branch last."""
        table = self.builder.branches
        out: list[tuple[int, int, int]] = []
        if table is None or table.max_entities == 0:
            return out
        triples = np.asarray(table.store.triples)
        for row, (ex, sent) in enumerate(zip(examples, sentences)):
            n = len(sent)
            fits = ex.entity_spans[:, 1] <= n - 2                            # text tokens of [CLS] text [SEP]
            spans, ids = ex.entity_spans[fits] + 1, ex.entity_ids[fits]
            if not len(ids):
                continue
            owner, rows = table.choose(ids)
            if not len(rows):
                continue
            starts, lengths = table.entity_tokens(triples[rows, 2].astype(np.int64))
            pool = table.token_pool
            for k, (s, m) in enumerate(zip(starts.tolist(), lengths.tolist())):
                if m == 0 or m > n:
                    continue
                obj = pool[s : s + m]
                own_start, own_end = spans[owner[k]]
                hits = np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(sent, m) == obj, axis=1))
                out += [(row, int(h), int(h) + m, *((int(rows[k]),) if with_triples else ()))
                        for h in hits.tolist() if h + m <= own_start or h >= own_end]
        return out

    def __call__(self, examples: Sequence[LinkedExample], generator: torch.Generator | None = None,
                 level: str | None = None) -> dict[str, torch.Tensor]:
        m = self.masking
        input_ids, lengths = m.pad(examples)                                  # [B, Ls], [B] text tokens
        unit_ids = m.unit_ids(examples, input_ids, lengths, level)
        masked, labels = mask_units(torch.from_numpy(input_ids), torch.from_numpy(unit_ids), m.vocab, m.mask_prob,
                                    m.max_predictions, generator or m._generator,
                                    replace_per_unit=m.replace_per_unit)                   # [B, Ls] each
        m.mask_facts(examples, input_ids, lengths, masked, labels, generator)
        swaps = []
        if self.branch_object_prob > 0:  # also mask (all [MASK]) text copies of branch objects
            originals = [row[: n + 2] for row, n in zip(input_ids, lengths)]
            matches = self.branch_object_matches(examples, originals, with_triples=True)
            draw = torch.rand(len(matches), 3, generator=generator or m._generator).tolist()
            for (row, start, end, triple), (u, v, w) in zip(matches, draw):
                if u < self.branch_object_prob:
                    labels[row, start:end] = torch.from_numpy(input_ids[row, start:end])
                    masked[row, start:end] = m.vocab.mask_id
                    if v < self.branch_swap_prob:
                        swaps.append((row, start, end, triple, w))
        sentences = [row[: n + 2] for row, n in zip(masked.numpy(), lengths)]
        fits = [ex.entity_spans[:, 1] <= n for ex, n in zip(examples, lengths)]
        tree = build_trees(sentences, [ex.entity_spans[f] + 1 for ex, f in zip(examples, fits)],
                           [ex.entity_ids[f] for ex, f in zip(examples, fits)], self.builder.branches,
                           self.builder.max_length, m.vocab.pad_id, self.builder.pad_to_max_length)
        index = tree.sentence_index                                           # [B, L] sentence token or -1
        tree_labels = torch.where(index >= 0, labels.gather(1, index.clamp(min=0)), IGNORE_INDEX)
        out = tree.as_dict()
        if swaps:
            out["input_ids"] = tree.input_ids.clone()
            self._swap_objects(out["input_ids"], tree_labels, tree, swaps)
        return {**out, "labels": tree_labels}


class KBertDataModule(PretrainDataModule):
    """K-BERT masked-LM batches from a linked corpus and a KG store.

    The arguments beyond :class:`~kept.train.data.PretrainDataModule`'s (corpus, vocab, masking,
    batch_size, max_length, mask_prob, num_workers, seed, val_fraction) are below;
    ``max_length`` bounds the tree (sentence + branches), the sentence is cut at max_length - 2.

    Args:
        store: the KG store the corpus was linked to (entity ids are its ids; ``--store`` sets it).
        max_entities: (relation, object) branches per linked entity span at most (default 2;
            ``--max-branches`` sets it).
        with_predicate: a branch is relation + object label (default True) or the object only.
        language: how labels are tokenised: ``en`` wordpieces (default) or ``zh`` characters
            (``--lang`` sets it).
        pad_to_max_length: pad trees to max_length instead of the longest (default False).
        branch_object_prob: probability of also masking, whole, each text span equal to the object
            label of a branch of another entity span in the sentence (default 0: plain K-BERT).
            With token masking alone few masked tokens can be read off a branch, and K-BERT
            does not learn to use its branches.
        branch_swap_prob: of those masked spans, the share whose object is replaced, in the branch
            and in the label, by another object of the same relation with as many tokens (default 0):
            the text alone cannot tell it, so copying from the branch pays off.
        fact_mask_prob: fact masking over ``store`` (as :class:`~kept.train.data.PretrainDataModule`).
    """

    def __init__(self, corpus: str, vocab: str, store: str, max_entities: int = 2, with_predicate: bool = True,
                 language: str = "en", masking: str = "token", batch_size: int = 32, max_length: int = 128,
                 mask_prob: float = 0.15, num_workers: int = 0, seed: int = 0, val_fraction: float = 0.02,
                 pad_to_max_length: bool = False, branch_object_prob: float = 0.0, branch_swap_prob: float = 0.0,
                 fact_mask_prob: float = 0.0):
        super().__init__(corpus, vocab, masking, batch_size, max_length, mask_prob, num_workers, seed, val_fraction,
                         fact_mask_prob, store)
        self.branches = BranchTable(store, self.tokenizer, language, max_entities, with_predicate, seed)
        builder = SentenceTreeBuilder(self.tokenizer, self.branches, max_length, add_sep=True,
                                      pad_to_max_length=pad_to_max_length)
        self.collator = KBertMaskingCollator(self.collator, builder, branch_object_prob, branch_swap_prob)

    def kbert_options(self) -> dict:
        """What a reader of the trained model needs to rebuild the same trees (kept.json)."""
        return {"store": str(self.branches.store_path.resolve()), **self.branches.options(),
                "max_length": self.hparams.max_length, "add_sep": True}


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


def benchmark_batch(corpus: str | Path, store: str | Path, vocab: str | Path, batch_size: int = 32,
                    seq_len: int = 128, seed: int = 0) -> dict[str, torch.Tensor]:
    """:func:`kbert_training_batch` in the common benchmark signature of :mod:`kept.methods`."""
    return kbert_training_batch(batch_size, seq_len, corpus, store, vocab, seed=seed)
