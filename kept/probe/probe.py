"""Running a probe: facts -> queries -> scores -> ranks -> metrics, for one model.

Two ranking modes (definitions of rank, P@k and MRR in :mod:`kept.probe.metrics`):

* ``single`` (LAMA-compatible): only facts whose object is one wordpiece (not [UNK]); one
  [MASK]; the gold is ranked among every vocabulary entry (special tokens included, as in
  LAMA), or among the tokens of a common vocabulary when one is given -- then facts whose
  object is not in it are left out, as LAMA does.
* ``multi``: every fact whose object has at most ``max_object_pieces`` wordpieces, none of
  them [UNK]; the candidates are the relation's distinct such objects (all facts of its
  file; objects with the same wordpieces are one candidate), each tokenised to its own
  number of wordpieces ``n`` and scored in a query with ``n`` masks:

  - ``masked`` (default, one query per distinct ``n`` per fact): all ``n`` pieces masked at
    once; score = sum over positions of log p(piece_i at mask i);
  - ``pll`` (pseudo-log-likelihood, one query per candidate wordpiece per fact): the
    candidate is written in and each of its pieces is masked in turn;
    score = sum of log p(piece_i | the other pieces);

  with ``length_norm="mean"`` (default) dividing the sum by ``n`` (longer names are not
  penalised for their length), or ``"sum"``.

Optionally, other true objects of the same subject (N-M relations) are removed from the
candidates (``filter_objects``), and the metrics are split by whether the fact's triple
``(sub_uri, relation, obj_uri)`` is in a given KG store (seen in training or not).

The queries of all relations are scored together (:func:`run_jobs`): sorted by length
across relations and handed to the scorer in chunks, so that batches are full and
unpadded even when relations are small.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kept.kg.store import KGStore
from kept.probe.jobs import MODES, MultiJob, ProbeOptions, SingleJob, build_queries, query_units, seen_flags
from kept.probe.lama import Fact, Relation
from kept.probe.metrics import macro_average, micro_average
from kept.probe.queries import QueryBuilder
from kept.probe.scorers import Scorer

__all__ = ["MODES", "MultiJob", "ProbeOptions", "SingleJob", "build_queries", "probe_multi", "probe_relations",
           "probe_single", "query_units", "run_jobs", "seen_flags"]


def run_jobs(scorer: Scorer, jobs: Sequence[SingleJob | MultiJob], chunk_size: int, progress: bool = False,
             desc: str = "", leave_one_out: bool = False) -> None:
    """Score the examples of every job together and hand each job its log-probs (``job.consume``).

    Examples are sorted by length across jobs and passed to ``scorer.mask_log_probs`` ``chunk_size``
    at a time; ``progress`` shows a tqdm bar over the queries (label ``desc``). leave_one_out: pass
    each example's probed triple as ``withheld`` (the scorer's KG minus that triple).
    """
    from tqdm.auto import tqdm

    owner = np.concatenate([np.full(len(j.examples), k, np.int64) for k, j in enumerate(jobs)] + [np.zeros(0, int)])
    local = np.concatenate([np.arange(len(j.examples)) for j in jobs] + [np.zeros(0, int)])
    examples = [ex for job in jobs for ex in job.examples]
    withheld = np.concatenate([j.example_withheld() for j in jobs] + [np.zeros(0, np.int64)]) if leave_one_out else None
    lengths = np.fromiter((len(ex) for ex in examples), dtype=np.int64, count=len(examples))
    order = np.argsort(lengths, kind="stable")
    with tqdm(total=len(examples), desc=desc, unit="query", disable=not progress) as bar:
        for start in range(0, len(order), chunk_size):
            chunk = order[start : start + chunk_size]
            picked = [examples[i] for i in chunk.tolist()]
            log_probs = (scorer.mask_log_probs(picked) if withheld is None
                         else scorer.mask_log_probs(picked, withheld=withheld[chunk]))
            if len(log_probs) != len(chunk):
                raise RuntimeError(f"{type(scorer).__name__}.mask_log_probs returned {len(log_probs)} results "
                                   f"for {len(chunk)} examples")
            for k in np.unique(owner[chunk]).tolist():
                sel = np.flatnonzero(owner[chunk] == k)
                jobs[k].consume(local[chunk[sel]], [log_probs[i] for i in sel.tolist()])
            bar.update(len(chunk))


def probe_single(scorer: Scorer, builder: QueryBuilder, relation: Relation, facts: Sequence[Fact],
                 options: ProbeOptions, store: KGStore | None = None) -> tuple[dict, list[dict]]:
    """Single-wordpiece (LAMA) probing of one relation: ``(metrics, one record per query)``.

    store: split the metrics by whether each fact's triple is in it (default None: no split).
    """
    job = SingleJob(builder, relation, facts, options, store)
    run_jobs(scorer, [job], options.chunk_size, leave_one_out=options.knowledge == "leave-one-out")
    return job.finish(scorer)


def probe_multi(scorer: Scorer, builder: QueryBuilder, relation: Relation, facts: Sequence[Fact],
                options: ProbeOptions, store: KGStore | None = None) -> tuple[dict, list[dict]]:
    """Multi-wordpiece probing of one relation over its distinct objects: ``(metrics, records)``."""
    job = MultiJob(builder, relation, facts, options, store)
    run_jobs(scorer, [job], options.chunk_size, leave_one_out=options.knowledge == "leave-one-out")
    return job.finish(scorer)


def probe_relations(scorer: Scorer, builder: QueryBuilder, probe_set: Sequence[tuple[Relation, list[Fact]]],
                    options: ProbeOptions, seen_store: KGStore | None = None, name: str = "model"
                    ) -> tuple[dict, list[dict]]:
    """Probe every relation in every mode: ``(metrics, per-query records)``.

    metrics: ``{mode: {"relations": {rel: {...}}, "macro": {...}, "micro": {...}[, "seen"/"unseen":
    {"macro", "micro"}]}}``. seen_store: split the metrics by whether each triple is in it.
    name: shown on the progress bars.
    """
    from tqdm.auto import tqdm

    metrics: dict = {}
    records: list[dict] = []
    job_class = {"single": SingleJob, "multi": MultiJob}
    for mode in options.modes:
        jobs = [job_class[mode](builder, relation, facts, options, seen_store) for relation, facts in probe_set]
        if options.protocol == "lama" and (mode != "single" or options.queries != "template"):
            raise ValueError("--protocol lama is LAMA's single-wordpiece template evaluation: use --mode single "
                             "and --queries template")
        pll = mode == "multi" and options.multi_scoring == "pll"
        if pll and options.knowledge == "leave-one-out":
            raise ValueError("the leave-one-out knowledge condition needs --multi-scoring masked (not pll)")
        run_jobs(scorer, jobs, options.chunk_size, options.progress, f"{name} {mode}",
                 leave_one_out=options.knowledge == "leave-one-out")
        per_relation: dict[str, dict] = {}
        split_ranks: dict[str, list[np.ndarray]] = {"all": [], "seen": [], "unseen": []}
        split_relations: dict[str, dict[str, dict]] = {"seen": {}, "unseen": {}}
        for job in tqdm(jobs, desc=f"{name} {mode} (PLL)", unit="relation", disable=not (options.progress and pll)):
            result, rows = job.finish(scorer)
            per_relation[job.relation.relation] = result
            records += rows
            ranks = np.asarray([r["rank"] for r in rows], dtype=np.int64)
            flags = np.asarray([r["seen"] for r in rows], dtype=np.int8)
            split_ranks["all"].append(ranks)
            for split, flag in (("seen", 1), ("unseen", 0)):
                if split in result:
                    split_ranks[split].append(ranks[flags == flag])
                    split_relations[split][job.relation.relation] = result[split]
        metrics[mode] = {"relations": per_relation, "macro": macro_average(per_relation),
                         "micro": micro_average(split_ranks["all"], options.mrr_cutoff)}
        for split in ("seen", "unseen"):
            if split_relations[split]:
                metrics[mode][split] = {"macro": macro_average(split_relations[split]),
                                        "micro": micro_average(split_ranks[split], options.mrr_cutoff)}
    return metrics, records
