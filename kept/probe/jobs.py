"""Per-relation probing jobs: which queries a relation gives, and how their log-probs become ranks.

A job is built from one relation's facts (:class:`SingleJob` for LAMA single-wordpiece
probing, :class:`MultiJob` for multi-wordpiece objects). Its ``examples`` are scored by
:func:`kept.probe.probe.run_jobs` together with the examples of every other relation
(length-sorted across relations, so batches are full and unpadded), and handed back chunk by
chunk to :meth:`consume`, which turns them into ranks at once (no [N, V] array is kept).
:meth:`finish` gives ``(metrics, one record per query)``. Rank and metric definitions:
:mod:`kept.probe.metrics`; the scoring of each mode: :mod:`kept.probe.probe`.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kept.data.examples import LinkedExample
from kept.kg.store import KGStore
from kept.probe.candidates import common_vocab_ids, excluded_matrix, masked_scores, pll_candidate_scores
from kept.probe.lama import Fact, ProbeDataError, Relation
from kept.probe.lama_protocol import default_common_vocab, distinct_facts, index_list, reconstructs
from kept.probe.metrics import LAMA_TOPK, gold_ranks, lama_ranks, summarize
from kept.probe.queries import QueryBuilder, fill_sentence, fill_template
from kept.probe.scorers import Scorer

MODES = ("single", "multi")


@dataclass
class ProbeOptions:
    """How facts become queries and how they are ranked.

    queries: "template" (default: the relation's template) or "sentences" (its masked evidence sentences).
    max_facts: probe the first N facts of each relation (default None: all).
    max_sentences: masked sentences per fact in "sentences" mode, each its own query (default 1).
    modes: ranking modes, a subset of ("single", "multi") (default both).
    common_vocab: tokens restricting single-wordpiece candidates and facts (default None: whole vocabulary).
    multi_scoring: "masked" (default) or "pll" (see :mod:`kept.probe.probe`).
    length_norm: "mean" (default) or "sum" of the wordpiece log-probs of a multi-wordpiece candidate.
    max_object_pieces: longest object in wordpieces in multi mode (default 10).
    filter_objects: leave other true objects of the same subject out of the ranking (default False).
    chunk_size: queries handed to the scorer at once (default 1024).
    progress: show tqdm progress bars (default True).
    knowledge: the probe-time knowledge condition (``kept.methods.KNOWLEDGE``, default "full"). With
        "leave-one-out" each query's probed triple is withheld from the scorer's KG (the builder's
        store); "off" is a query builder without store or linker (no entity spans).
    protocol: "kept" (default: kept's ranks, see :mod:`kept.probe.metrics`) or "lama" (LAMA's own
        evaluation, :mod:`kept.probe.lama_protocol`: single mode, template queries, distinct
        (subject, object) facts, the common vocabulary in file order, LAMA's ranks and MRR).
    """

    queries: str = "template"
    max_facts: int | None = None
    max_sentences: int = 1
    modes: tuple[str, ...] = MODES
    common_vocab: Sequence[str] | None = None
    multi_scoring: str = "masked"
    length_norm: str = "mean"
    max_object_pieces: int = 10
    filter_objects: bool = False
    chunk_size: int = 1024
    progress: bool = True
    knowledge: str = "full"
    protocol: str = "kept"

    @property
    def mrr_cutoff(self) -> int | None:
        """Ranks above it add 0 to the MRR (LAMA's top 1,000 under ``protocol="lama"``)."""
        return LAMA_TOPK if self.protocol == "lama" else None

    def __post_init__(self) -> None:
        checks = [("queries", self.queries, ("template", "sentences")), ("multi_scoring", self.multi_scoring,
                  ("masked", "pll")), ("length_norm", self.length_norm, ("mean", "sum"))]
        for name, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ValueError(f"modes must be a non-empty subset of {MODES}, not {self.modes!r}")
        if self.max_sentences < 1 or self.max_object_pieces < 1 or self.chunk_size < 1:
            raise ValueError("max_sentences, max_object_pieces and chunk_size must be >= 1")


@dataclass
class Units:
    """The query units of one relation: a (fact, sentence) pair each (sentence -1 in template mode)."""

    fact: np.ndarray                 # int64 [U] index into the probed facts
    sentence: np.ndarray             # int64 [U]
    skipped: Counter

    def subset(self, keep: np.ndarray) -> Units:
        return Units(self.fact[keep], self.sentence[keep], self.skipped)


def query_units(relation: Relation, facts: Sequence[Fact], options: ProbeOptions) -> Units:
    """Which queries the facts give: one per fact (template) or up to ``max_sentences`` per fact."""
    skipped: Counter = Counter()
    if options.queries == "template":
        if relation.template is None:
            raise ProbeDataError(f"{relation.path}: relation {relation.relation} has no template in relations.jsonl;"
                                 f" probe it with masked sentences (--queries sentences)")
        return Units(np.arange(len(facts), dtype=np.int64), np.full(len(facts), -1, np.int64), skipped)
    fact_idx, sentence_idx = [], []
    for f, fact in enumerate(facts):
        usable = [s for s, text in enumerate(fact.masked_sentences) if text.count("[MASK]") == 1]
        if not usable:
            skipped["no masked sentence with one [MASK]"] += 1
        for s in usable[: options.max_sentences]:
            fact_idx.append(f)
            sentence_idx.append(s)
    return Units(np.asarray(fact_idx, np.int64), np.asarray(sentence_idx, np.int64), skipped)


def build_queries(builder: QueryBuilder, relation: Relation, facts: Sequence[Fact], units: Units,
                  num_masks: int) -> list[LinkedExample | None]:
    """One query per unit with ``num_masks`` object masks (None where it is too long)."""
    texts, spans, keys = [], [], []
    for f, s in zip(units.fact.tolist(), units.sentence.tolist()):
        fact = facts[f]
        if s < 0:
            text, span = fill_template(relation.template, fact.sub_label, num_masks, builder.mask_token)
        else:
            surface = fact.sub_surfaces[s] if s < len(fact.sub_surfaces) else None
            text, span = fill_sentence(fact.masked_sentences[s], num_masks, surface or fact.sub_label,
                                       builder.mask_token)
        texts.append(text)
        spans.append(span)
        keys.append(fact.sub_uri)
    return builder.build(texts, spans, keys)


def seen_flags(store: KGStore | None, relation: str, facts: Sequence[Fact]) -> np.ndarray:
    """int8 [F]: 1 when the fact's (sub_uri, relation, obj_uri) triple is in ``store``, 0 when not,
    -1 when unknown (no store, or the fact has no URIs)."""
    flags = np.full(len(facts), -1, np.int8)
    if store is None:
        return flags
    has_uris = np.asarray([bool(f.sub_uri and f.obj_uri) for f in facts], dtype=bool)
    flags[has_uris] = fact_triple_rows(store, relation, facts)[has_uris] >= 0
    return flags


def fact_triple_rows(store: KGStore | None, relation: str, facts: Sequence[Fact]) -> np.ndarray:
    """int64 [F]: the row in ``store.triples`` of each fact's (sub_uri, relation, obj_uri) triple, -1 when
    the store does not hold it (or there is no store, or the fact has no URIs)."""
    rows = np.full(len(facts), -1, np.int64)
    if store is None:
        return rows
    try:
        rel = store.relation_id(relation)
    except KeyError:
        return rows
    for i, fact in enumerate(facts):
        if not fact.sub_uri or not fact.obj_uri:
            continue
        try:
            head, tail = store.entity_id(fact.sub_uri), store.entity_id(fact.obj_uri)
        except KeyError:
            continue
        relations, tails = store.neighbours(head)                    # out-edges: triples[out_indptr[head]:...]
        hit = np.flatnonzero((relations == rel) & (tails == tail))
        if len(hit):
            rows[i] = int(store.out_indptr[head]) + int(hit[0])
    return rows


def _subject_key(fact: Fact) -> str:
    return fact.sub_uri or fact.sub_label

#: a space between two CJK characters (left by decode)
_CJK_GAP = re.compile(r"(?<=[\u3400-\u9fff\uf900-\ufaff]) (?=[\u3400-\u9fff\uf900-\ufaff])")


class _Job:
    """Shared state: the relation, its probed facts, query units, built queries, seen flags."""

    mode = ""

    def __init__(self, builder: QueryBuilder, relation: Relation, all_facts: Sequence[Fact], options: ProbeOptions,
                 store: KGStore | None):
        self.builder, self.tokenizer, self.relation, self.options = builder, builder.tokenizer, relation, options
        if options.protocol == "lama":  # one query per distinct (subject, object), as LAMA's template mode
            all_facts = distinct_facts(all_facts)
        self.all_facts, self.facts, self.store = all_facts, list(all_facts[: options.max_facts]), store
        self.units = query_units(relation, self.facts, options)
        self.examples: list[LinkedExample] = []
        self.example_unit: np.ndarray | None = None   # unit of each example when they differ (multi mode)

    def example_withheld(self) -> np.ndarray:
        """int64 [len(examples)]: the store triple row of each example's fact (leave-one-out), -1 if none."""
        rows = fact_triple_rows(self.builder.store, self.relation.relation, self.facts)[self.units.fact]   # [U]
        return rows if self.example_unit is None else rows[self.example_unit]

    def _finish(self, ranks: np.ndarray, predictions: list[str], **extra) -> tuple[dict, list[dict]]:
        flags = seen_flags(self.store, self.relation.relation, self.facts)[self.units.fact]
        skipped = {k: v for k, v in self.units.skipped.items() if v}
        cutoff = self.options.mrr_cutoff
        result = {"label": self.relation.label, **summarize(ranks, cutoff), "skipped": skipped, **extra}
        if np.any(flags >= 0):
            result["seen"], result["unseen"] = summarize(ranks[flags == 1], cutoff), summarize(ranks[flags == 0], cutoff)
        records = [{"relation": self.relation.relation, "mode": self.mode, "sub_label": self.facts[f].sub_label,
                    "obj_label": self.facts[f].obj_label, "sentence": int(s), "rank": int(r), "prediction": p,
                    "seen": int(g)}
                   for f, s, r, p, g in zip(self.units.fact.tolist(), self.units.sentence.tolist(), ranks.tolist(),
                                            predictions, flags.tolist())]
        return result, records


class SingleJob(_Job):
    """LAMA single-wordpiece probing of one relation: gold = the object's one wordpiece, ranked over
    the vocabulary (or the common vocabulary)."""

    mode = "single"

    def __init__(self, builder: QueryBuilder, relation: Relation, all_facts: Sequence[Fact], options: ProbeOptions,
                 store: KGStore | None = None):
        super().__init__(builder, relation, all_facts, options, store)
        tok, all_facts = self.tokenizer, self.all_facts   # the protocol's facts (LAMA: distinct pairs)
        pieces = tok([f.obj_label for f in all_facts], add_special_tokens=False)["input_ids"] if all_facts else []
        single = np.asarray([p[0] if len(p) == 1 and p[0] != tok.unk_token_id else -1 for p in pieces], np.int64)
        lama = options.protocol == "lama"
        if lama:  # LAMA: the wordpiece must spell the label back
            single = np.asarray([s if s >= 0 and reconstructs(tok, f.obj_label, s) else -1
                                 for s, f in zip(single.tolist(), all_facts)], np.int64)
            self.common = index_list(tok, options.common_vocab or default_common_vocab(tok))
        else:
            self.common = common_vocab_ids(tok, options.common_vocab) if options.common_vocab is not None else None
        gold = single[: len(self.facts)][self.units.fact]                                  # [U] vocabulary ids
        ok = gold >= 0
        self.units.skipped["object not one known wordpiece"] += int(np.sum(~ok))
        if self.common is not None:
            in_common = np.isin(gold, self.common.numpy())
            self.units.skipped["object not in the common vocabulary"] += int(np.sum(ok & ~in_common))
            ok &= in_common
        self.units = self.units.subset(ok)
        queries = build_queries(builder, relation, self.facts, self.units, 1)
        built = np.asarray([q is not None for q in queries], dtype=bool)
        self.units.skipped["query too long"] += int(np.sum(~built))
        self.units = self.units.subset(built)
        self.examples = [q for q in queries if q is not None]
        self.gold = single[: len(self.facts)][self.units.fact]                             # [U]
        self.objects: dict[str, list[int]] = defaultdict(list)                             # subject -> true objects
        for fact, g in zip(all_facts, single.tolist()):
            if g >= 0:
                self.objects[_subject_key(fact)].append(g)
        self.ranks = np.zeros(len(self.examples), np.int64)
        self.predictions = np.zeros(len(self.examples), np.int64)

    def consume(self, rows: np.ndarray, log_probs: list[torch.Tensor]) -> None:
        """Rank the gold of queries ``rows`` from their [1, V] log-probs."""
        if any(lp.shape[0] != 1 for lp in log_probs):
            raise RuntimeError("expected one [MASK] row per single-wordpiece query")
        scores = torch.cat(log_probs).float()                                              # [m, V]
        gold = torch.as_tensor(self.gold[rows])                                            # [m] vocabulary ids
        columns = self.common if self.common is not None else torch.arange(scores.shape[1])
        if self.common is not None:                                                        # columns = common ids
            position = torch.full((scores.shape[1],), -1, dtype=torch.int64)
            position[self.common] = torch.arange(len(self.common))
            scores, gold = scores[:, self.common], position[gold]
        excluded = None
        if self.options.filter_objects:
            # other true objects of the same subject, as columns of ``scores``
            column_of = {v: c for c, v in enumerate(columns.tolist())} if self.common is not None else None
            other = [self.objects[_subject_key(self.facts[f])] for f in self.units.fact[rows].tolist()]
            if column_of is not None:
                other = [[column_of[v] for v in o if v in column_of] for o in other]
            excluded = excluded_matrix(scores.shape, other, gold)
            scores = scores.masked_fill(excluded, float("-inf"))
        if self.options.protocol == "lama":
            self.ranks[rows] = lama_ranks(scores, gold).numpy()
        else:
            self.ranks[rows] = gold_ranks(scores, gold, excluded).numpy()
        self.predictions[rows] = columns[scores.argmax(dim=1)].numpy()

    def finish(self, scorer: Scorer) -> tuple[dict, list[dict]]:
        return self._finish(self.ranks, self.tokenizer.convert_ids_to_tokens(self.predictions.tolist()))


class MultiJob(_Job):
    """Multi-wordpiece probing of one relation: candidates = the relation's distinct objects (without
    [UNK], at most ``max_object_pieces`` wordpieces), scored over their own number of masks."""

    mode = "multi"

    def __init__(self, builder: QueryBuilder, relation: Relation, all_facts: Sequence[Fact], options: ProbeOptions,
                 store: KGStore | None = None):
        super().__init__(builder, relation, all_facts, options, store)
        tok, all_facts = self.tokenizer, self.all_facts   # the protocol's facts (LAMA: distinct pairs)
        pieces = [tuple(p) for p in tok([f.obj_label for f in all_facts], add_special_tokens=False)["input_ids"]] \
            if all_facts else []
        self.candidates = sorted({p for p in pieces if 0 < len(p) <= options.max_object_pieces
                                  and tok.unk_token_id not in p}, key=lambda p: (len(p), p))
        column = {p: c for c, p in enumerate(self.candidates)}
        self.gold_of_fact = np.asarray([column.get(p, -1) for p in pieces], dtype=np.int64)  # [all facts]
        ok = self.gold_of_fact[self.units.fact] >= 0
        self.units.skipped[f"object has [UNK] or over {options.max_object_pieces} wordpieces"] += int(np.sum(~ok))
        self.units = self.units.subset(ok)
        self.lengths = sorted({len(p) for p in self.candidates})
        queries = {n: build_queries(builder, relation, self.facts, self.units, n) for n in self.lengths}
        built = np.ones(len(self.units.fact), dtype=bool)
        for n_queries in queries.values():
            built &= np.asarray([q is not None for q in n_queries], dtype=bool)
        self.units.skipped["query too long"] += int(np.sum(~built))
        self.units = self.units.subset(built)
        self.queries = {n: [q for q, ok in zip(qs, built.tolist()) if ok] for n, qs in queries.items()}
        self.columns = {n: torch.as_tensor([c for c, p in enumerate(self.candidates) if len(p) == n])
                        for n in self.lengths}
        self.candidate_ids = {n: torch.as_tensor([self.candidates[c] for c in self.columns[n].tolist()],
                                                 dtype=torch.int64) for n in self.lengths}     # n -> [C_n, n]
        self.scores = torch.full((len(self.units.fact), len(self.candidates)), float("-inf"))   # [U, C]
        if options.multi_scoring == "masked":
            self.examples = [q for n in self.lengths for q in self.queries[n]]
            self.example_unit = np.concatenate([np.arange(len(self.units.fact))] * len(self.lengths)) \
                if self.lengths else np.zeros(0, np.int64)
            self.example_length = np.repeat(np.asarray(self.lengths, np.int64), len(self.units.fact))

    def consume(self, rows: np.ndarray, log_probs: list[torch.Tensor]) -> None:
        """Score every candidate of length n for queries ``rows`` (with n masks) from their [n, V] log-probs."""
        lengths = self.example_length[rows]
        for n in np.unique(lengths).tolist():
            sel = np.flatnonzero(lengths == n)
            if any(log_probs[i].shape[0] != n for i in sel.tolist()):
                raise RuntimeError(f"expected {n} [MASK] rows per query")
            stacked = torch.stack([log_probs[i] for i in sel.tolist()]).float()            # [q, n, V]
            units = torch.as_tensor(self.example_unit[rows[sel]])
            self.scores[units[:, None], self.columns[n][None, :]] = masked_scores(stacked, self.candidate_ids[n])

    def finish(self, scorer: Scorer) -> tuple[dict, list[dict]]:
        scores = self.scores
        for n in self.lengths:
            if self.options.multi_scoring == "pll":
                scores[:, self.columns[n]] = pll_candidate_scores(scorer, self.queries[n], self.candidate_ids[n],
                                                                  self.tokenizer.mask_token_id, self.options.chunk_size)
            if self.options.length_norm == "mean":
                scores[:, self.columns[n]] /= n
        gold = torch.as_tensor(self.gold_of_fact[self.units.fact])
        excluded = None
        if self.options.filter_objects:
            objects: dict[str, set[int]] = defaultdict(set)
            for fact, c in zip(self.all_facts, self.gold_of_fact.tolist()):
                if c >= 0:
                    objects[_subject_key(fact)].add(c)
            other = [sorted(objects[_subject_key(self.facts[f])]) for f in self.units.fact.tolist()]
            excluded = excluded_matrix(scores.shape, other, gold)
            scores = scores.masked_fill(excluded, float("-inf"))
        ranks = gold_ranks(scores, gold, excluded).numpy()
        best = scores.argmax(dim=1).tolist() if len(self.candidates) else []
        # BERT's decode puts a space between CJK characters: 治疗, not 治 疗
        names = [_CJK_GAP.sub("", self.tokenizer.decode(list(self.candidates[c]))) for c in best]
        return self._finish(ranks, names, candidates=len(self.candidates))
