"""Intervals and Holm's correction against scipy and hand computation."""

import math

import pytest
from scipy import stats as sps

from tunelab.results.stats import holm, paired_p_value, t_interval


def test_t_interval_matches_scipy():
    values = [0.21, 0.25, 0.19, 0.24, 0.22]
    got = t_interval(values)
    lo, hi = sps.t.interval(0.95, len(values) - 1, loc=sps.tmean(values), scale=sps.sem(values))
    assert got.mean == pytest.approx((lo + hi) / 2)
    assert got.half_width == pytest.approx((hi - lo) / 2)
    assert got.n == 5


def test_t_interval_by_hand_two_values():
    # n=2: s = |a-b|/sqrt(2), half-width = t_{0.975,1} * s / sqrt(2) = 12.7062 * |a-b| / 2
    got = t_interval([1.0, 3.0])
    assert got.half_width == pytest.approx(12.7062047 * 2.0 / 2, rel=1e-6)


def test_single_value_has_no_interval():
    assert t_interval([0.5]).half_width is None and t_interval([]) is None


def test_paired_p_matches_ttest_rel_on_shared_seeds():
    a = {0: 0.30, 1: 0.35, 2: 0.28, 3: 0.33}
    b = {0: 0.25, 1: 0.31, 2: 0.27, 3: 0.26, 9: 0.99}  # seed 9 has no partner: left out
    expected = sps.ttest_rel([0.30, 0.35, 0.28, 0.33], [0.25, 0.31, 0.27, 0.26]).pvalue
    assert paired_p_value(a, b) == pytest.approx(expected)


def test_holm_hand_example():
    # p sorted: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06, monotone)
    got = holm({"a": 0.03, "b": 0.01, "c": 0.04, "d": 0.02, "e": None})
    assert got == pytest.approx({"a": 0.06, "b": 0.04, "c": 0.06, "d": 0.06, "e": None})


def test_holm_caps_at_one():
    got = holm({"a": 0.6, "b": 0.5})
    assert got["a"] == 1.0 and got["b"] == 1.0
    assert not math.isnan(got["a"])


def test_seed_invariant_difference_is_not_tested():
    # trainable parameters: 6.509 vs 6.120 on every seed; ttest_rel would say p = 0
    assert paired_p_value({0: 6.509, 1: 6.509}, {0: 6.120, 1: 6.120}) is None
    assert paired_p_value({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}) is None
