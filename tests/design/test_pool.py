"""Balanced pools of strategy assignments: balance per group, determinism, distinctness, bad arguments, no torch."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from import_probe import run_probe
from peftspace.design.errors import DesignError
from peftspace.design.pool import balanced_assignments
from peftspace.design.space import ALL_SUBSETS

CASES = [  # (groups, n, subsets)
    (4, 100, ALL_SUBSETS), (4, 60, ALL_SUBSETS), (4, 7, ALL_SUBSETS), (1, 15, ALL_SUBSETS), (1, 31, ALL_SUBSETS),
    (2, 9, ("A", "L", "AL")), (2, 8, ("A", "L", "AL")), (2, 20, ("A", "L", "AL")), (3, 27, ("A", "P", "AP")),
    (2, 225, ALL_SUBSETS), (2, 224, ALL_SUBSETS), (6, 1, ("B",)),
]


@pytest.mark.parametrize("groups, n, subsets", CASES)
def test_every_group_is_balanced(groups, n, subsets):
    pool = balanced_assignments(groups, n, np.random.default_rng(3), subsets)
    assert len(pool) == n and all(len(a) == groups for a in pool)
    low, high = n // len(subsets), -(-n // len(subsets))
    for g in range(groups):
        counts = Counter(a[g] for a in pool)
        assert set(counts) <= set(subsets)
        assert all(low <= counts.get(s, 0) <= high for s in subsets), (g, counts)


@pytest.mark.parametrize("groups, n, subsets", CASES)
def test_assignments_are_distinct_where_possible(groups, n, subsets):
    pool = balanced_assignments(groups, n, np.random.default_rng(4), subsets)
    possible = len(subsets) ** groups
    counts = Counter(pool)
    if n <= possible:
        assert len(counts) == n
    else:  # every assignment, each floor(n / possible) or ceil(n / possible) times
        assert len(counts) == possible and set(counts.values()) <= {n // possible, -(-n // possible)}


def test_the_whole_product_when_n_equals_its_size():
    pool = balanced_assignments(2, 9, np.random.default_rng(0), ("A", "L", "AL"))
    assert sorted(pool) == sorted(itertools.product(("A", "L", "AL"), repeat=2))


def test_same_seed_same_pool_other_seed_other_pool():
    first = balanced_assignments(4, 100, np.random.default_rng(11))
    assert first == balanced_assignments(4, 100, np.random.default_rng(11))
    assert first != balanced_assignments(4, 100, np.random.default_rng(12))
    assert all(isinstance(s, str) for a in first for s in a)


def test_groups_are_shuffled_independently():
    # 50 pools: the subsets of groups 1 and 2 are nearly independent (a chi-square test of the 15 x 15 table
    # summed over pools), not tied together as in a cyclic arrangement
    from scipy.stats import chi2_contingency

    table = np.zeros((15, 15))
    index = {s: i for i, s in enumerate(ALL_SUBSETS)}
    rng = np.random.default_rng(5)
    for _ in range(50):
        for a in balanced_assignments(4, 90, rng):
            table[index[a[0]], index[a[1]]] += 1
    assert chi2_contingency(table).pvalue > 0.001
    # and the method indicators of two groups are nearly uncorrelated within one pool
    pool = balanced_assignments(4, 150, np.random.default_rng(6))
    x = np.array([[m in a[g] for g in range(4) for m in "APBL"] for a in pool], dtype=float)
    correlation = np.corrcoef(x.T)
    across = np.array([correlation[i, j] for i in range(16) for j in range(16) if i // 4 != j // 4])
    assert np.abs(across).max() < 0.4 and np.abs(across).mean() < 0.1


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_groups=0), "num_groups=0 must be a positive integer"),
    (dict(num_groups=2.0), "num_groups=2.0 must be a positive integer"),
    (dict(n=0), "n=0 must be a positive integer"),
    (dict(n=True), "n=True must be a positive integer"),
    (dict(rng=0), "rng must be a numpy.random.Generator"),
    (dict(subsets=()), "must be a non-empty list of strategy subsets"),
    (dict(subsets="AL"), "must be a non-empty list of strategy subsets"),
    (dict(subsets=("A", "X", "LA")), "subsets ['X', 'LA'] are not strategy subsets"),
    (dict(subsets=("A", "L", "A")), "subsets ['A'] are listed more than once"),
])
def test_bad_arguments_raise_a_design_error(kwargs, message):
    arguments = dict(num_groups=4, n=10, rng=np.random.default_rng(0), subsets=ALL_SUBSETS) | kwargs
    with pytest.raises(DesignError) as caught:
        balanced_assignments(**arguments)
    assert message in str(caught.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(DesignError) as caught:
        balanced_assignments(0, -1, None, ())
    assert len(caught.value.problems) == 4


def test_the_pool_module_imports_no_torch():
    report = run_probe("import numpy as np", "from peftspace.design.pool import balanced_assignments",
                       "balanced_assignments(4, 20, np.random.default_rng(0))")
    assert report == {"attempts": [], "loaded": []}


def test_per_group_subsets_balance_each_group_over_its_own_list():
    lists = [("A", "L", "AL"), ("P", "B", "PB"), ("L", "AP", "APBL"), ("B", "A", "PL")]
    pool = balanced_assignments(4, 32, np.random.default_rng(2), lists)
    assert len(set(pool)) == 32
    for g, allowed in enumerate(lists):
        counts = Counter(a[g] for a in pool)
        assert set(counts) == set(allowed) and max(counts.values()) - min(counts.values()) <= 1
    with pytest.raises(DesignError, match="different numbers of subsets"):
        balanced_assignments(4, 8, np.random.default_rng(0), [("A", "L"), ("P",), ("L", "B"), ("A", "B")])
    with pytest.raises(DesignError, match="3 groups' subsets for num_groups=4"):
        balanced_assignments(4, 8, np.random.default_rng(0), lists[:3])
    with pytest.raises(DesignError, match=r"subsets\[1\] \['X'\] are not strategy subsets"):
        balanced_assignments(4, 8, np.random.default_rng(0), [lists[0], ("P", "X", "PB"), *lists[2:]])
