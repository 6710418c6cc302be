"""KS distance and test against scipy and by hand; bootstrap intervals: coverage, width, determinism."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import stats as scipy_stats

from peftspace.analysis import Interval, bootstrap_ci, bootstrap_difference, ks_distance, ks_test, normalized_edf

# ------------------------------------------------------------------------------------------------- KS


def test_ks_by_hand_with_ties():
    # a's EDF: 1/4 at 1, 3/4 at 2, 1 at 3; b's: 0 at 1, 1/4 at 2, 3/4 at 3, 1 at 4 -> largest gap 1/2 at t = 2
    a, b = [1, 2, 2, 3], [2, 3, 3, 4]
    assert ks_distance(a, b) == 0.5
    d, p = ks_test(a, b)
    assert d == 0.5 and 0 < p <= 1


def test_ks_exact_p_value_by_hand():
    # n = m = 4, fully separated: D = 1, and only 2 of the C(8, 4) = 70 orderings reach it
    d, p = ks_test([1, 2, 3, 4], [5, 6, 7, 8])
    assert d == 1.0 and p == pytest.approx(2 / 70)
    assert ks_test([1.0, 2.0], [1.0, 2.0]) == (0.0, 1.0)


@pytest.mark.parametrize("n, m, decimals", [(1, 1, 0), (1, 7, 1), (12, 9, 0), (40, 55, 1), (300, 250, 2)])
def test_ks_matches_scipy_including_ties(n, m, decimals):
    rng = np.random.default_rng(n * 1000 + m)
    a = np.round(rng.normal(0, 1, n), decimals)  # rounding makes ties within and across the samples
    b = np.round(rng.normal(0.3, 1.2, m), decimals)
    reference = scipy_stats.ks_2samp(a, b, alternative="two-sided", method="auto")
    assert ks_distance(a, b) == pytest.approx(reference.statistic, abs=1e-12)
    d, p = ks_test(a, b)
    assert d == pytest.approx(reference.statistic, abs=1e-12) and p == pytest.approx(reference.pvalue, rel=1e-12)


def test_weighted_ks_distance():
    a, b = [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]
    assert ks_distance(a, b, weights_a=[1, 1, 1, 1]) == 0.0
    # normalized weights shift a's mass to its largest error: F_a = 1/6, 2/6, 3/6, 1 vs 1/4, 1/2, 3/4, 1
    weights = normalized_edf(a, [1e3, 1e3, 1e3, 1e5], bins=2).weights
    assert ks_distance(a, b, weights_a=weights) == pytest.approx(0.25)


def test_ks_rejects_bad_input():
    with pytest.raises(ValueError, match="a is empty"):
        ks_test([], [1.0])
    with pytest.raises(ValueError, match="b holds 1 non-finite"):
        ks_distance([1.0], [np.nan])


# ------------------------------------------------------------------------------------------ bootstrap


def test_ci_of_the_mean_of_a_large_normal_sample_contains_the_true_mean():
    values = np.random.default_rng(0).normal(10.0, 2.0, 5000)
    ci = bootstrap_ci(values, rng=np.random.default_rng(1))
    assert ci.low < 10.0 < ci.high and ci.low < ci.estimate < ci.high
    assert ci.estimate == pytest.approx(values.mean()) and ci.confidence == 0.95
    assert ci.width == pytest.approx(2 * 1.96 * 2.0 / np.sqrt(5000), rel=0.15)


def test_ci_of_quantiles_contains_the_true_quantiles():
    values = np.random.default_rng(2).normal(0.0, 1.0, 4000)
    median = bootstrap_ci(values, np.median, n_resamples=1000, rng=np.random.default_rng(3))
    assert median.low < 0.0 < median.high
    q90 = bootstrap_ci(values, functools.partial(np.quantile, q=0.9), n_resamples=1000, rng=np.random.default_rng(3))
    assert q90.low < scipy_stats.norm.ppf(0.9) < q90.high


def test_ci_width_shrinks_with_n():
    rng = np.random.default_rng(4)
    small = bootstrap_ci(rng.normal(0, 1, 100), rng=rng)
    large = bootstrap_ci(rng.normal(0, 1, 10_000), rng=rng)
    assert large.width < small.width / 5  # about 1/sqrt(100) = 1/10


def test_coverage_is_near_the_nominal_level():
    rng = np.random.default_rng(5)
    covered = []
    for _ in range(200):
        ci = bootstrap_ci(rng.normal(3.0, 1.0, 50), n_resamples=400, rng=rng)
        covered.append(ci.low <= 3.0 <= ci.high)
    assert 0.88 <= np.mean(covered) <= 0.99


def test_percentile_interval_by_hand():
    # resampled means of [0, 1] are 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4
    wide = bootstrap_ci([0.0, 1.0], confidence=0.95, n_resamples=4000, rng=np.random.default_rng(6))
    assert (wide.low, wide.high) == (0.0, 1.0)
    narrow = bootstrap_ci([0.0, 1.0], confidence=0.4, n_resamples=4000, rng=np.random.default_rng(6))
    assert (narrow.low, narrow.high) == (0.5, 0.5)  # the 30% and 70% quantiles both fall on 1/2


def test_one_value_gives_a_zero_width_interval():
    assert bootstrap_ci([7.0], rng=np.random.default_rng(0)) == Interval(7.0, 7.0, 7.0, 0.95)


def test_determinism_and_no_global_state():
    values = np.random.default_rng(7).normal(0, 1, 80)
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    first = bootstrap_ci(values, rng=np.random.default_rng(42))
    np.random.seed(999)  # global seeding has no effect
    assert bootstrap_ci(values, rng=np.random.default_rng(42)) == first
    assert bootstrap_ci(values, rng=np.random.default_rng(43)) != first
    np.random.seed(123)
    assert np.array_equal(np.random.get_state()[1], state)
    diff = bootstrap_difference(values, values + 1, rng=np.random.default_rng(42))
    assert diff == bootstrap_difference(values, values + 1, rng=np.random.default_rng(42))


def test_a_statistic_without_axis_gives_the_same_interval():
    values = np.random.default_rng(8).normal(0, 1, 30)
    vectorized = bootstrap_ci(values, np.mean, n_resamples=300, rng=np.random.default_rng(9))
    row_by_row = bootstrap_ci(values, lambda v: float(np.mean(v)), n_resamples=300, rng=np.random.default_rng(9))
    assert row_by_row.low == pytest.approx(vectorized.low) and row_by_row.high == pytest.approx(vectorized.high)


def test_difference_between_two_spaces():
    rng = np.random.default_rng(10)
    a, b = rng.normal(5.0, 1.0, 2000), rng.normal(3.0, 1.0, 2000)
    diff = bootstrap_difference(a, b, rng=rng)
    assert diff.estimate == pytest.approx(a.mean() - b.mean())
    assert diff.low < 2.0 < diff.high and diff.excludes(0.0)
    same = bootstrap_difference(a, a, rng=rng)
    assert same.estimate == 0.0 and not same.excludes(0.0)
    median = bootstrap_difference(a, b, np.median, n_resamples=500, rng=rng)
    assert median.low < 2.0 < median.high


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(rng=0), TypeError, "numpy.random.Generator"),
    (dict(rng=np.random.RandomState(0)), TypeError, "default_rng"),
    (dict(rng=np.random.default_rng(0), confidence=1.0), ValueError, "strictly between"),
    (dict(rng=np.random.default_rng(0), n_resamples=0), ValueError, "positive integer"),
])
def test_bootstrap_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        bootstrap_ci([1.0, 2.0], **kwargs)
    with pytest.raises(error, match=match):
        bootstrap_difference([1.0, 2.0], [1.0], **kwargs)
