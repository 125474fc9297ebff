"""The study's statistics: mean ± std over seeds and the stratified paired bootstrap over facts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kept.probe.stats import macro_mean, mean_std, paired_bootstrap


def test_mean_std_is_the_sample_std():
    assert mean_std([0.2, 0.4, 0.6]) == pytest.approx({"mean": 0.4, "std": 0.2, "runs": 3})
    assert mean_std([0.5]) == {"mean": 0.5, "std": 0.0, "runs": 1}
    with pytest.raises(ValueError):
        mean_std([])


def test_macro_mean_weights_relations_equally():
    values = np.array([1.0, 1.0, 1.0, 0.0])                      # relation a: 3 facts, all right; b: 1, wrong
    assert macro_mean(values, np.array(["a", "a", "a", "b"])) == 0.5


def test_a_constant_difference_has_a_point_interval():
    rel = np.repeat(["r1", "r2"], 50)
    base = np.random.default_rng(1).integers(0, 2, 100).astype(float)
    got = paired_bootstrap(base + 0.25, base, rel, replicates=500)
    assert got.estimate == pytest.approx(0.25) and got.low == pytest.approx(0.25) and got.high == pytest.approx(0.25)


def test_interval_matches_the_exact_bootstrap_distribution_by_hand():
    # one relation, differences (1, 0, 0): the 27 equally likely resamples have means k/3 with
    # k ~ Binomial(3, 1/3): P(0) = 8/27, P(1/3) = 12/27, P(2/3) = 6/27, P(1) = 1/27
    diff = np.array([1.0, 0.0, 0.0])
    means = sorted(np.mean(diff[list(idx)]) for idx in itertools.product(range(3), repeat=3))
    assert means.count(0.0) == 8 and means.count(1.0) == 1
    got = paired_bootstrap(diff, np.zeros(3), np.zeros(3), replicates=200_000, level=0.9, seed=3)
    # 5th percentile: 0 (P(0) = 0.30 > 0.05); 95th: 2/3 (P(<= 2/3) = 26/27 = 0.963 >= 0.95, P(<= 1/3) = 0.74)
    assert got.estimate == pytest.approx(1 / 3)
    assert got.low == pytest.approx(0.0) and got.high == pytest.approx(2 / 3)


def test_strata_are_resampled_separately():
    # relation a always gains 1, b never: every replicate's macro difference is exactly 0.5
    rel = np.array(["a"] * 5 + ["b"] * 20)
    method = np.array([1.0] * 5 + [0.0] * 20)
    got = paired_bootstrap(method, np.zeros(25), rel, replicates=300)
    assert (got.low, got.estimate, got.high) == pytest.approx((0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap(method, np.zeros(3), rel)
