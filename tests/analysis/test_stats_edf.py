"""Errors from scores, the EDF and the complexity-normalized EDF, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peftspace.analysis import edf, edf_at, error_from_scores, normalized_edf

# ---------------------------------------------------------------------------------- error_from_scores


def test_error_of_one_design_is_100_minus_the_mean_score():
    assert error_from_scores({"rte": 70.0, "sst2": 90.0}) == pytest.approx(20.0)
    # MCC-like scores may be negative: still 100 - mean
    assert error_from_scores({"cola": -10.0, "rte": 50.0}) == pytest.approx(80.0)


def test_errors_of_several_designs_normalized_by_the_best_seen():
    designs = [{"a": 60.0, "b": 80.0}, {"b": 40.0, "a": 80.0}]  # key order does not matter
    np.testing.assert_allclose(error_from_scores(designs), [30.0, 40.0])
    # references a=80, b=80: design 0 -> (75 + 100)/2 = 87.5; design 1 -> (100 + 50)/2 = 75
    np.testing.assert_allclose(error_from_scores(designs, normalizers="best"), [12.5, 25.0])


def test_errors_normalized_by_explicit_references():
    # 40/50 -> 80, 90/100 -> 90: mean 85, error 15
    assert error_from_scores({"a": 40.0, "b": 90.0}, normalizers={"a": 50.0, "b": 100.0, "c": 1.0}) == pytest.approx(15.0)


def test_error_from_scores_reports_every_problem_at_once():
    with pytest.raises(ValueError) as info:
        error_from_scores([{"a": 1.0, "b": float("nan")}, {"a": 2.0}, {"a": "x", "b": 3.0}])
    message = str(info.value)
    assert "design 1 is scored on ['a']" in message
    assert "task 'b': score nan" in message and "'x' is not a finite number" in message
    with pytest.raises(ValueError, match=r"lack a reference for \['b'\]"):
        error_from_scores({"a": 1.0, "b": 2.0}, normalizers={"a": 1.0})
    with pytest.raises(ValueError, match=r"reference score of \['a'\] is not positive"):
        error_from_scores({"a": 1.0}, normalizers={"a": 0.0})
    with pytest.raises(ValueError, match="at least one design"):
        error_from_scores([])
    with pytest.raises(ValueError, match="no task scores"):
        error_from_scores({})
    with pytest.raises(ValueError, match="'best' or a task"):
        error_from_scores({"a": 1.0}, normalizers="max")


# ------------------------------------------------------------------------------------------------ EDF


def test_edf_convention_with_ties():
    x, F = edf([3.0, 1.0, 2.0, 2.0])
    np.testing.assert_array_equal(x, [1.0, 2.0, 2.0, 3.0])
    np.testing.assert_array_equal(F, [0.25, 0.5, 0.75, 1.0])  # F[i] = (i+1)/n: the tie takes two steps
    # the right-continuous step function: F(2) counts both 2s
    np.testing.assert_array_equal(edf_at([3, 1, 2, 2], [0, 1, 1.5, 2, 2.5, 3, 10, -np.inf, np.inf]),
                                  [0, 0.25, 0.25, 0.75, 0.75, 1, 1, 0, 1])
    assert edf_at([3, 1, 2, 2], 2) == 0.75 and isinstance(edf_at([3, 1, 2, 2], 2), float)


def test_edf_of_one_value():
    x, F = edf([5.0])
    np.testing.assert_array_equal(x, [5.0])
    np.testing.assert_array_equal(F, [1.0])
    assert edf_at([5.0], 4.999) == 0.0 and edf_at([5.0], 5.0) == 1.0


@pytest.mark.parametrize("bad, match", [([], "empty"), ([1.0, np.nan], "non-finite"), ([np.inf], "non-finite"),
                                        ([[1.0, 2.0]], "1-D")])
def test_edf_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        edf(bad)
    with pytest.raises(ValueError, match=match):
        edf_at(bad, 0.0)


def test_edf_at_rejects_nan_threshold_and_bad_weights():
    with pytest.raises(ValueError, match="NaN"):
        edf_at([1.0], np.nan)
    with pytest.raises(ValueError, match="one weight per value"):
        edf_at([1.0, 2.0], 1.0, weights=[1.0])
    with pytest.raises(ValueError, match="non-negative"):
        edf_at([1.0, 2.0], 1.0, weights=[1.0, -1.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=30))
def test_edf_matches_counting_and_steps_reach_the_edf_at_the_end_of_ties(values):
    x, F = edf(values)
    counted = np.array([np.mean(np.asarray(values) <= v) for v in x])
    np.testing.assert_allclose(edf_at(values, x), counted)
    last_of_run = np.append(x[1:] != x[:-1], True)
    np.testing.assert_allclose(F[last_of_run], counted[last_of_run])
    assert np.all(F <= counted + 1e-12)


# -------------------------------------------------------------------------------------- normalized EDF


def test_normalized_edf_hand_example_with_a_count_on_the_top_edge():
    # log10 edges [3, 4, 5]; 1e5 equals the top edge and must land in the last bin (the nds bug gave it
    # weight 0: np.digitize puts it past the last bin). Bin 0 holds three designs, bin 1 one: each bin
    # weighs 1/2, so the three get 1/6 each and the one on the edge 1/2.
    result = normalized_edf([4.0, 1.0, 3.0, 2.0], [1e5, 1e3, 1e3, 1e3], bins=2)
    np.testing.assert_allclose(result.edges, [1e3, 1e4, 1e5])
    np.testing.assert_allclose(result.weights, [1 / 2, 1 / 6, 1 / 6, 1 / 6])
    np.testing.assert_array_equal(result.x, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(result.F, [1 / 6, 2 / 6, 3 / 6, 1.0])
    assert result.weights.sum() == pytest.approx(1.0)
    assert np.digitize(1e5, result.edges) == 3  # what the notebooks' binning does: outside bins 1..2
    assert edf_at([4.0, 1.0, 3.0, 2.0], 3.0, weights=result.weights) == pytest.approx(0.5)  # weights in input order


def test_explicit_edges_half_open_bins_with_a_closed_top_edge():
    params = [10, 100, 1000, 50, 20]  # bin [10, 100): 10, 50, 20; bin [100, 1000]: 100 and 1000
    result = normalized_edf([1, 2, 3, 4, 5], params, bins=[10, 100, 1000])
    np.testing.assert_allclose(result.weights, [1 / 6, 1 / 4, 1 / 4, 1 / 6, 1 / 6])
    np.testing.assert_array_equal(np.histogram(params, [10, 100, 1000])[0], [3, 2])  # same bins as numpy's
    np.testing.assert_allclose(result.F, np.cumsum([1 / 6, 1 / 4, 1 / 4, 1 / 6, 1 / 6]))


def test_reference_masses_empty_bins_and_equal_counts():
    # reference = the sample's own histogram gives back the plain EDF
    result = normalized_edf([4.0, 1.0, 3.0, 2.0], [1e5, 1e3, 1e3, 1e3], bins=2, reference=[3, 1])
    np.testing.assert_allclose(result.weights, [0.25] * 4)
    np.testing.assert_allclose(result.F, edf([4.0, 1.0, 3.0, 2.0])[1])
    # empty middle bin: its mass is dropped and the two occupied bins share the weight
    np.testing.assert_allclose(normalized_edf([1.0, 2.0], [1, 1000], bins=3).weights, [0.5, 0.5])
    # every design the same size: one bin, equal weights
    np.testing.assert_allclose(normalized_edf([3.0, 1.0, 2.0], [5, 5, 5]).weights, [1 / 3] * 3)
    # ties keep input order (stable sort) and take successive weighted steps
    tied = normalized_edf([2.0, 2.0], [1, 100], bins=2, reference=[1, 3])
    np.testing.assert_allclose(tied.F, [0.25, 1.0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(errors=[1.0, 2.0], params=[1.0]), "one count per design"),
    (dict(errors=[1.0], params=[0.0]), "positive"),
    (dict(errors=[1.0, 2.0], params=[5, 2000], bins=[10, 100, 1000]), "outside the edges"),
    (dict(errors=[1.0], params=[5], bins=[10, 10]), "strictly increasing"),
    (dict(errors=[1.0], params=[5], bins=0), "at least 1"),
    (dict(errors=[1.0], params=[5], bins=2, reference=[1.0]), "one per bin"),
    (dict(errors=[1.0, 2.0], params=[1, 100], bins=2, reference=[0, 0]), "zero mass"),
])
def test_normalized_edf_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        normalized_edf(**kwargs)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([1e3, 2e3, 5e3, 1e4, 3e4, 1e5]), min_size=1, max_size=25), st.integers(1, 6))
def test_every_occupied_bin_gets_equal_weight_and_nothing_is_dropped(params, bins):
    result = normalized_edf(np.arange(len(params), dtype=float), params, bins=bins)
    assert result.weights.sum() == pytest.approx(1.0) and np.all(result.weights > 0)
    assert result.F[-1] == pytest.approx(1.0)
    if result.edges[0] < result.edges[-1]:  # numpy's own binning (last bin closed) as the independent check
        totals = np.histogram(params, result.edges, weights=result.weights)[0]
        occupied = totals[np.histogram(params, result.edges)[0] > 0]
        np.testing.assert_allclose(occupied, 1 / occupied.size)
        assert totals.sum() == pytest.approx(1.0)  # no design fell outside the bins
