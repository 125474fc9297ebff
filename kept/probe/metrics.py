"""Ranks and the LAMA metrics P@1, P@10 and MRR.

Definitions used everywhere in kept (and stated in ``docs/probe.md``):

* **rank** of the gold object = the number of candidates whose score is *greater than or
  equal to* the gold's score, the gold included. Ties therefore count against the gold
  (a model that gives every candidate the same score ranks the gold last, never first);
  candidates excluded by filtering are not counted.
* **P@k** = share of queries whose gold rank is <= k; **MRR** = mean of 1 / rank.
* **macro** average = the unweighted mean over relations with at least one query (LAMA's
  headline numbers); **micro** = pooled over all queries.

``--protocol lama`` ranks as LAMA's code does instead (:func:`lama_ranks`): the gold's position
in the scores sorted best first, ties in vocabulary order (a stable sort, where LAMA takes
``torch.topk``'s order), and MRR counts 1 / rank only within the top 1,000 (LAMA's ``topk``).

Candidate sets are chosen by the caller: the whole vocabulary or a common vocabulary for
single-wordpiece objects, the relation's distinct objects for multi-wordpiece ones.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

METRICS = ("p@1", "p@10", "mrr")
#: LAMA's ``topk``: a gold ranked below it adds 0 to the MRR
LAMA_TOPK = 1000


def gold_ranks(scores: torch.Tensor, gold: torch.Tensor, excluded: torch.Tensor | None = None) -> torch.Tensor:
    """int64 [N]: rank of each query's gold candidate (1 = best; ties count against the gold).

    scores: float [N, C] score of every candidate for every query (higher = better).
    gold: int64 [N] column of the gold candidate in ``scores``.
    excluded: bool [N, C] candidates left out of the ranking (e.g. other true objects of
        the same subject); the gold itself is never excluded (default None: none).
    """
    gold_score = scores.gather(1, gold[:, None])                                  # [N, 1]
    at_least = scores >= gold_score                                                # [N, C]
    if excluded is not None:
        keep = ~excluded
        keep[torch.arange(len(gold)), gold] = True
        at_least &= keep
    return at_least.sum(dim=1)


def lama_ranks(scores: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """int64 [N]: LAMA's rank of each gold, its 1-based position in a stable best-first sort of ``scores``:
    1 + candidates scoring higher + candidates scoring the same at a lower column (ties in column order).

    scores: float [N, C]. gold: int64 [N] column of the gold.
    """
    gold_score = scores.gather(1, gold[:, None])                                  # [N, 1]
    before = torch.arange(scores.shape[1])[None, :] < gold[:, None]               # [N, C]
    return 1 + (scores > gold_score).sum(dim=1) + ((scores == gold_score) & before).sum(dim=1)


def summarize(ranks: Iterable[int] | np.ndarray, mrr_cutoff: int | None = None) -> dict:
    """``{"n", "p@1", "p@10", "mrr"}`` of gold ranks (metrics are None when there are no queries).

    mrr_cutoff: ranks above it add 0 to the MRR (LAMA: :data:`LAMA_TOPK`; default None: no cutoff).
    """
    ranks = np.asarray(list(ranks) if not isinstance(ranks, np.ndarray) else ranks, dtype=np.float64)
    if ranks.size == 0:
        return {"n": 0, "p@1": None, "p@10": None, "mrr": None}
    if ranks.min() < 1:
        raise ValueError("ranks start at 1")
    reciprocal = 1.0 / ranks if mrr_cutoff is None else np.where(ranks <= mrr_cutoff, 1.0 / ranks, 0.0)
    return {"n": int(ranks.size), "p@1": float(np.mean(ranks <= 1)), "p@10": float(np.mean(ranks <= 10)),
            "mrr": float(np.mean(reciprocal))}


def macro_average(per_relation: dict[str, dict]) -> dict:
    """``{"relations", "n", "p@1", "p@10", "mrr"}``: unweighted mean over relations with n > 0."""
    used = [m for m in per_relation.values() if m.get("n", 0) > 0]
    out = {"relations": len(used), "n": int(sum(m["n"] for m in used))}
    for name in METRICS:
        out[name] = float(np.mean([m[name] for m in used])) if used else None
    return out


def micro_average(all_ranks: Iterable[np.ndarray], mrr_cutoff: int | None = None) -> dict:
    """:func:`summarize` of the ranks of every relation pooled together."""
    arrays = [np.asarray(r, dtype=np.float64) for r in all_ranks]
    return summarize(np.concatenate(arrays) if arrays else np.zeros(0), mrr_cutoff)
