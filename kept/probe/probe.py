"""Running a probe: facts -> queries -> scores -> ranks -> metrics, for one model.

Two ranking modes (definitions of rank, P@k and MRR in :mod:`kept.probe.metrics`):

* ``single`` (LAMA-compatible): only facts whose object is one wordpiece (not [UNK]); one
  [MASK]; the gold is ranked among every vocabulary entry (special tokens included, as in
  LAMA), or among the tokens of a common vocabulary when one is given -- then facts whose
  object is not in it are left out, as LAMA does.
* ``multi``: every fact whose object has at most ``max_object_pieces`` wordpieces; the
  candidates are the relation's distinct objects (all facts of its file), each tokenised
  to its own number of wordpieces ``n`` and scored in a query with ``n`` masks:

  - ``masked`` (default, one forward pass per distinct ``n`` per query): all ``n`` pieces
    masked at once; score = sum over positions of log p(piece_i at mask i);
  - ``pll`` (pseudo-log-likelihood, one forward pass per candidate wordpiece per query):
    the candidate is written in and each of its pieces is masked in turn;
    score = sum of log p(piece_i | the other pieces);

  with ``length_norm="mean"`` (default) dividing the sum by ``n`` (longer names are not
  penalised for their length), or ``"sum"``.

Optionally, other true objects of the same subject (N-M relations) are removed from the
candidates (``filter_objects``), and the metrics are split by whether the fact's triple
``(sub_uri, relation, obj_uri)`` is in a given KG store (seen in training or not).
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kept.data.examples import LinkedExample
from kept.kg.store import KGStore
from kept.probe.lama import Fact, ProbeDataError, Relation
from kept.probe.metrics import gold_ranks, macro_average, micro_average, summarize
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
    multi_scoring: "masked" (default) or "pll" (see the module docstring).
    length_norm: "mean" (default) or "sum" of the wordpiece log-probs of a multi-wordpiece candidate.
    max_object_pieces: longest object in wordpieces in multi mode (default 10).
    filter_objects: leave other true objects of the same subject out of the ranking (default False).
    chunk_size: queries handed to the scorer at once (default 512).
    progress: show a tqdm progress bar (default True).
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
    chunk_size: int = 512
    progress: bool = True

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
                  num_masks: int | np.ndarray) -> list[LinkedExample | None]:
    """One query per unit with ``num_masks`` (one count, or int [U]) object masks (None: too long)."""
    counts = np.broadcast_to(np.asarray(num_masks), units.fact.shape)
    texts, spans, keys = [], [], []
    for f, s, n in zip(units.fact.tolist(), units.sentence.tolist(), counts.tolist()):
        fact = facts[f]
        if s < 0:
            text, span = fill_template(relation.template, fact.sub_label, n, builder.mask_token)
        else:
            surface = fact.sub_surfaces[s] if s < len(fact.sub_surfaces) else None
            text, span = fill_sentence(fact.masked_sentences[s], n, surface or fact.sub_label, builder.mask_token)
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
    try:
        rel = store.relation_id(relation)
    except KeyError:
        rel = None
    for i, fact in enumerate(facts):
        if not fact.sub_uri or not fact.obj_uri:
            continue
        try:
            head, tail = store.entity_id(fact.sub_uri), store.entity_id(fact.obj_uri)
        except KeyError:
            flags[i] = 0
            continue
        relations, tails = store.neighbours(head)
        flags[i] = int(rel is not None and bool(np.any((relations == rel) & (tails == tail))))
    return flags


def score_in_chunks(scorer: Scorer, examples: Sequence[LinkedExample], chunk_size: int
                    ) -> Iterator[tuple[int, list[torch.Tensor]]]:
    """``(start, log-probs of examples[start:start + chunk_size])``, checked against the contract."""
    for start in range(0, len(examples), chunk_size):
        chunk = list(examples[start : start + chunk_size])
        log_probs = scorer.mask_log_probs(chunk)
        if len(log_probs) != len(chunk):
            raise RuntimeError(f"{type(scorer).__name__}.mask_log_probs returned {len(log_probs)} results "
                               f"for {len(chunk)} examples")
        yield start, log_probs


def _subject_key(fact: Fact) -> str:
    return fact.sub_uri or fact.sub_label


def _results(relation: Relation, ranks: np.ndarray, flags: np.ndarray, skipped: Counter, **extra) -> dict:
    out = {"label": relation.label, **summarize(ranks), "skipped": dict(skipped), **extra}
    if np.any(flags >= 0):
        out["seen"], out["unseen"] = summarize(ranks[flags == 1]), summarize(ranks[flags == 0])
    return out


def probe_single(scorer: Scorer, builder: QueryBuilder, relation: Relation, all_facts: Sequence[Fact],
                 options: ProbeOptions, store: KGStore | None = None) -> tuple[dict, list[dict]]:
    """Single-wordpiece (LAMA) probing of one relation: ``(metrics, one record per query)``."""
    tokenizer = builder.tokenizer
    facts = list(all_facts[: options.max_facts])
    pieces = tokenizer([f.obj_label for f in all_facts], add_special_tokens=False)["input_ids"]
    single = np.asarray([p[0] if len(p) == 1 and p[0] != tokenizer.unk_token_id else -1 for p in pieces],
                        dtype=np.int64)
    common = common_vocab_ids(tokenizer, options.common_vocab) if options.common_vocab is not None else None
    units = query_units(relation, facts, options)
    gold_of_fact = single[: len(facts)]
    ok = gold_of_fact[units.fact] >= 0
    units.skipped["object not one wordpiece"] += int(np.sum(~ok))
    if common is not None:
        in_common = np.isin(gold_of_fact[units.fact], common.numpy())
        units.skipped["object not in the common vocabulary"] += int(np.sum(ok & ~in_common))
        ok &= in_common
    units = Units(units.fact[ok], units.sentence[ok], units.skipped)
    examples = build_queries(builder, relation, facts, units, 1)
    built = np.asarray([ex is not None for ex in examples], dtype=bool)
    units.skipped["query too long"] += int(np.sum(~built))
    units = Units(units.fact[built], units.sentence[built], units.skipped)
    examples = [ex for ex in examples if ex is not None]
    others: dict[str, set[int]] = defaultdict(set)
    for fact, gold in zip(all_facts, single.tolist()):
        if gold >= 0:
            others[_subject_key(fact)].add(gold)
    ranks = np.zeros(len(examples), np.int64)
    predictions: list[int] = []
    for start, log_probs in score_in_chunks(scorer, examples, options.chunk_size):
        if any(lp.shape[0] != 1 for lp in log_probs):
            raise RuntimeError(f"{type(scorer).__name__}: expected one [MASK] row per single-wordpiece query")
        scores = torch.cat(log_probs).float()                                               # [n, V]
        fact_rows = units.fact[start : start + len(log_probs)]
        gold = torch.as_tensor(gold_of_fact[fact_rows], dtype=torch.int64)                 # [n] vocabulary ids
        columns = common if common is not None else torch.arange(scores.shape[1])
        if common is not None:                                                             # columns = common ids
            scores, gold = scores[:, common], torch.searchsorted(common, gold)
        excluded = None
        if options.filter_objects:
            # other true objects of the same subject, as columns of ``scores``
            other = [sorted(others[_subject_key(facts[f])]) for f in fact_rows.tolist()]
            if common is not None:
                column_of = {v: c for c, v in enumerate(common.tolist())}
                other = [[column_of[v] for v in o if v in column_of] for o in other]
            excluded = excluded_matrix(scores.shape, other, gold)
            scores = scores.masked_fill(excluded, float("-inf"))
        ranks[start : start + len(log_probs)] = gold_ranks(scores, gold, excluded).numpy()
        predictions += columns[scores.argmax(dim=1)].tolist()
    flags = seen_flags(store, relation.relation, facts)[units.fact]
    tokens = tokenizer.convert_ids_to_tokens(predictions)
    records = [{"relation": relation.relation, "mode": "single", "sub_label": facts[f].sub_label,
                "obj_label": facts[f].obj_label, "sentence": int(s), "rank": int(r), "prediction": t,
                "seen": int(g)} for f, s, r, t, g in zip(units.fact.tolist(), units.sentence.tolist(),
                                                        ranks.tolist(), tokens, flags.tolist())]
    return _results(relation, ranks, flags, units.skipped), records


def excluded_matrix(shape: torch.Size, columns: Sequence[Sequence[int]], gold: torch.Tensor) -> torch.Tensor:
    """bool [N, C]: True at ``columns[row]`` of each row (other true objects), False at the gold column."""
    excluded = torch.zeros(shape, dtype=torch.bool)
    rows = [r for r, cols in enumerate(columns) for _ in cols]
    flat = [c for cols in columns for c in cols]
    if flat:
        excluded[torch.as_tensor(rows), torch.as_tensor(flat)] = True
    excluded[torch.arange(len(gold)), gold] = False
    return excluded


def common_vocab_ids(tokenizer, tokens: Sequence[str]) -> torch.Tensor:
    """int64 [C]: sorted vocabulary ids of the common-vocabulary tokens the tokenizer knows."""
    vocab = tokenizer.get_vocab()
    ids = sorted({vocab[t] for t in tokens if t in vocab})
    if not ids:
        raise ProbeDataError("no token of the common vocabulary is in the model's vocabulary")
    return torch.as_tensor(ids, dtype=torch.int64)


def probe_multi(scorer: Scorer, builder: QueryBuilder, relation: Relation, all_facts: Sequence[Fact],
                options: ProbeOptions, store: KGStore | None = None) -> tuple[dict, list[dict]]:
    """Multi-wordpiece probing of one relation over its distinct objects: ``(metrics, records)``."""
    tokenizer = builder.tokenizer
    facts = list(all_facts[: options.max_facts])
    pieces = [tuple(p) for p in tokenizer([f.obj_label for f in all_facts], add_special_tokens=False)["input_ids"]]
    usable = sorted({p for p in pieces if 0 < len(p) <= options.max_object_pieces}, key=lambda p: (len(p), p))
    column = {p: c for c, p in enumerate(usable)}
    gold_of_fact = np.asarray([column.get(p, -1) for p in pieces], dtype=np.int64)
    units = query_units(relation, facts, options)
    ok = gold_of_fact[units.fact] >= 0
    units.skipped[f"object empty or over {options.max_object_pieces} wordpieces"] += int(np.sum(~ok))
    units = Units(units.fact[ok], units.sentence[ok], units.skipped)
    lengths = sorted({len(p) for p in usable})
    queries = {n: build_queries(builder, relation, facts, units, n) for n in lengths}  # n -> [U] queries
    built = np.ones(len(units.fact), dtype=bool)
    for examples in queries.values():
        built &= np.asarray([ex is not None for ex in examples], dtype=bool)
    units.skipped["query too long"] += int(np.sum(~built))
    keep = np.flatnonzero(built)
    units = Units(units.fact[keep], units.sentence[keep], units.skipped)
    queries = {n: [examples[i] for i in keep.tolist()] for n, examples in queries.items()}
    scores = torch.full((len(keep), len(usable)), float("-inf"))                           # [U, C]
    for n in lengths:
        columns = [c for c, p in enumerate(usable) if len(p) == n]
        candidate_ids = torch.as_tensor([usable[c] for c in columns], dtype=torch.int64)    # [C_n, n]
        if options.multi_scoring == "masked":
            scores[:, columns] = masked_candidate_scores(scorer, queries[n], candidate_ids, options.chunk_size)
        else:
            scores[:, columns] = pll_candidate_scores(scorer, queries[n], candidate_ids, builder.tokenizer.mask_token_id,
                                                      options.chunk_size)
        if options.length_norm == "mean":
            scores[:, columns] /= n
    gold = torch.as_tensor(gold_of_fact[units.fact], dtype=torch.int64)
    excluded = None
    if options.filter_objects:
        objects: dict[str, set[int]] = defaultdict(set)
        for fact, c in zip(all_facts, gold_of_fact.tolist()):
            if c >= 0:
                objects[_subject_key(fact)].add(c)
        excluded = excluded_matrix(scores.shape, [sorted(objects[_subject_key(facts[f])])
                                                  for f in units.fact.tolist()], gold)
    if excluded is not None:
        scores = scores.masked_fill(excluded, float("-inf"))
    ranks = gold_ranks(scores, gold, excluded).numpy()
    best = scores.argmax(dim=1).tolist() if len(usable) else []
    flags = seen_flags(store, relation.relation, facts)[units.fact]
    names = [tokenizer.decode(list(usable[c])) for c in best]
    records = [{"relation": relation.relation, "mode": "multi", "sub_label": facts[f].sub_label,
                "obj_label": facts[f].obj_label, "sentence": int(s), "rank": int(r), "prediction": p,
                "seen": int(g)} for f, s, r, p, g in zip(units.fact.tolist(), units.sentence.tolist(),
                                                        ranks.tolist(), names, flags.tolist())]
    return _results(relation, ranks, flags, units.skipped, candidates=len(usable)), records


def masked_candidate_scores(scorer: Scorer, queries: Sequence[LinkedExample], candidate_ids: torch.Tensor,
                            chunk_size: int) -> torch.Tensor:
    """float [U, C_n]: sum over i of log p(candidate piece i at mask i), all n pieces masked at once.

    queries: U queries with n masks each. candidate_ids: int64 [C_n, n] wordpieces of the candidates.
    """
    n = candidate_ids.shape[1]
    out = torch.empty(len(queries), len(candidate_ids))
    positions = torch.arange(n)[:, None]                                                    # [n, 1]
    for start, log_probs in score_in_chunks(scorer, queries, chunk_size):
        if any(lp.shape[0] != n for lp in log_probs):
            raise RuntimeError(f"{type(scorer).__name__}: expected {n} [MASK] rows per query")
        stacked = torch.stack(log_probs).float()                                            # [q, n, V]
        out[start : start + len(log_probs)] = stacked[:, positions, candidate_ids.T].sum(dim=1)   # [q, C_n]
    return out


def pll_candidate_scores(scorer: Scorer, queries: Sequence[LinkedExample], candidate_ids: torch.Tensor,
                         mask_id: int, chunk_size: int) -> torch.Tensor:
    """float [U, C_n]: pseudo-log-likelihood of each candidate written into each query.

    For candidate c and position i the query's n masks are replaced by c's pieces except
    piece i, which stays masked; the score is the sum over i of log p(c_i) there.
    """
    num_candidates, n = candidate_ids.shape
    out = torch.zeros(len(queries), num_candidates)
    # one variant per (query, candidate, position), generated lazily chunk by chunk
    total = len(queries) * num_candidates * n
    flat_candidates = candidate_ids.numpy()
    for start in range(0, total, chunk_size):
        index = np.arange(start, min(start + chunk_size, total))
        q, rest = np.divmod(index, num_candidates * n)
        c, i = np.divmod(rest, n)
        variants = []
        for qq, cc, ii in zip(q.tolist(), c.tolist(), i.tolist()):
            base = queries[qq]
            ids = base.input_ids.copy()
            slots = np.flatnonzero(ids == mask_id)
            ids[slots] = flat_candidates[cc]
            ids[slots[ii]] = mask_id
            variants.append(dataclasses.replace(base, input_ids=ids))
        log_probs = scorer.mask_log_probs(variants)
        if any(lp.shape[0] != 1 for lp in log_probs):
            raise RuntimeError(f"{type(scorer).__name__}: expected one [MASK] row per PLL variant")
        rows = torch.cat(log_probs).float()                                                # [m, V]
        piece = torch.as_tensor(flat_candidates[c, i], dtype=torch.int64)
        picked = rows.gather(1, piece[:, None])[:, 0]                                      # [m]
        out.index_put_((torch.as_tensor(q), torch.as_tensor(c)), picked, accumulate=True)
    return out


def probe_relations(scorer: Scorer, builder: QueryBuilder, probe_set: Sequence[tuple[Relation, list[Fact]]],
                    options: ProbeOptions, seen_store: KGStore | None = None, name: str = "model"
                    ) -> tuple[dict, list[dict]]:
    """Probe every relation in every mode: ``(metrics, per-query records)``.

    metrics: ``{mode: {"relations": {rel: {...}}, "macro": {...}, "micro": {...}[, "seen"/"unseen":
    {"macro", "micro"}]}}``. seen_store: split the metrics by whether each triple is in it.
    name: shown on the progress bar.
    """
    from tqdm.auto import tqdm

    metrics: dict = {}
    records: list[dict] = []
    run = {"single": probe_single, "multi": probe_multi}
    for mode in options.modes:
        per_relation: dict[str, dict] = {}
        split_ranks: dict[str, list[np.ndarray]] = {"all": [], "seen": [], "unseen": []}
        split_relations: dict[str, dict[str, dict]] = {"seen": {}, "unseen": {}}
        bar = tqdm(probe_set, desc=f"{name} {mode}", unit="relation", disable=not options.progress)
        for relation, facts in bar:
            result, rows = run[mode](scorer, builder, relation, facts, options, seen_store)
            per_relation[relation.relation] = result
            records += rows
            ranks = np.asarray([r["rank"] for r in rows], dtype=np.int64)
            flags = np.asarray([r["seen"] for r in rows], dtype=np.int8)
            split_ranks["all"].append(ranks)
            for split, flag in (("seen", 1), ("unseen", 0)):
                if split in result:
                    split_ranks[split].append(ranks[flags == flag])
                    split_relations[split][relation.relation] = result[split]
            bar.set_postfix(relation=relation.relation, queries=result["n"])
        metrics[mode] = {"relations": per_relation, "macro": macro_average(per_relation),
                         "micro": micro_average(split_ranks["all"])}
        for split in ("seen", "unseen"):
            if split_relations[split]:
                metrics[mode][split] = {"macro": macro_average(split_relations[split]),
                                        "micro": micro_average(split_ranks[split])}
    return metrics, records
