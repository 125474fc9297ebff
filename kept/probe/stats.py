"""Statistics of probe results: mean ± std over seeds, and a paired bootstrap interval over facts.

The study compares a method with the baseline on the same facts. Per fact, a metric (P@1 as 0/1,
or 1/rank) is first averaged over the seeds of each method; the paired difference is then
resampled *within each relation* (a stratified bootstrap: every replicate keeps each relation's
number of facts) and macro-averaged over relations, exactly as the reported macro P@1 is. The 95 %
interval is the 2.5th and 97.5th percentiles of the replicates (the percentile bootstrap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A paired difference (method − baseline): its point estimate and bootstrap interval.

    estimate: the macro-averaged difference on the facts as observed. low / high: the interval's
    bounds. level: its coverage (default 0.95). replicates: bootstrap replicates drawn.
    """

    estimate: float
    low: float
    high: float
    level: float
    replicates: int

    def as_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "level": self.level,
                "replicates": self.replicates}


def mean_std(values: Sequence[float]) -> dict:
    """``{"mean", "std", "runs"}``: the sample standard deviation (ddof 1; 0.0 for one run)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_std of no runs")
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else 0.0, "runs": int(x.size)}


def macro_mean(values: np.ndarray, relations: np.ndarray) -> float:
    """Mean over relations of the per-relation mean of ``values`` (float [F]; ``relations`` [F] labels)."""
    _, inverse = np.unique(relations, return_inverse=True)
    sums = np.bincount(inverse, weights=values)
    return float(np.mean(sums / np.bincount(inverse)))


def paired_bootstrap(method: np.ndarray, baseline: np.ndarray, relations: np.ndarray, replicates: int = 10_000,
                     level: float = 0.95, seed: int = 0) -> Interval:
    """The macro-averaged paired difference ``method − baseline`` with a stratified percentile bootstrap.

    method / baseline: float [F] per-fact metric of the two (each already averaged over its seeds),
        the same facts in the same order. relations: [F] the relation of each fact (the strata).
    replicates: bootstrap replicates (default 10,000). level: interval coverage (default 0.95).
    seed: the resampling seed (default 0).
    Vectorised per relation: a [replicates, n_r] index draw, no loop over replicates.
    """
    method, baseline = np.asarray(method, np.float64), np.asarray(baseline, np.float64)
    relations = np.asarray(relations)
    if method.shape != baseline.shape or method.shape != relations.shape or method.ndim != 1:
        raise ValueError(f"method, baseline and relations must be 1-D of one length; got {method.shape}, "
                         f"{baseline.shape}, {relations.shape}")
    if method.size == 0:
        raise ValueError("paired_bootstrap of no facts")
    diff = method - baseline
    rng = np.random.default_rng(seed)
    per_relation = []
    for label in np.unique(relations):
        d = diff[relations == label]                                                   # [n_r]
        draws = rng.integers(0, len(d), size=(replicates, len(d)))                     # [B, n_r]
        per_relation.append(d[draws].mean(axis=1))                                     # [B]
    macro = np.mean(per_relation, axis=0)                                              # [B]
    tail = (1 - level) / 2
    low, high = np.quantile(macro, [tail, 1 - tail])
    return Interval(macro_mean(diff, relations), float(low), float(high), level, replicates)
