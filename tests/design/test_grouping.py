"""Layer grouping: named patterns, largest-remainder rounding, explicit sizes and ranges.

Every expected size below is worked out by hand in the comment beside it.
"""

from __future__ import annotations

import pytest

from peftspace.design.grouping import PATTERN_NAMES, group_ranges, pattern_ratios, round_sizes


def sizes_of(ranges: list[tuple[int, int]]) -> list[int]:
    return [last - first + 1 for first, last in ranges]


# -- the paper's five shapes, four groups ----------------------------------------------------------

@pytest.mark.parametrize("pattern, ratios", [
    ("uniform", [1, 1, 1, 1]),
    ("increasing", [1, 2, 3, 4]),
    ("decreasing", [4, 3, 2, 1]),
    ("spindle", [1, 2, 2, 1]),
    ("bottleneck", [2, 1, 1, 2]),
])
def test_four_group_ratios(pattern, ratios):
    assert pattern_ratios(pattern, 4) == ratios


@pytest.mark.parametrize("pattern, num_layers, expected", [
    ("uniform", 12, [3, 3, 3, 3]),
    # quotas 1.2 2.4 3.6 4.8 -> floors 1 2 3 4 (10); the two spare layers go to .8 and .6
    ("increasing", 12, [1, 2, 4, 5]),
    # quotas 4.8 3.6 2.4 1.2 -> floors 4 3 2 1; spare layers to .8 (group 0) and .6 (group 1)
    ("decreasing", 12, [5, 4, 2, 1]),
    ("spindle", 12, [2, 4, 4, 2]),
    ("bottleneck", 12, [4, 2, 2, 4]),
    ("uniform", 24, [6, 6, 6, 6]),
    # quotas 2.4 4.8 7.2 9.6 -> floors 2 4 7 9 (22); spare layers to .8 (group 1) and .6 (group 3)
    ("increasing", 24, [2, 5, 7, 10]),
    # quotas 9.6 7.2 4.8 2.4 -> floors 9 7 4 2; spare layers to .8 (group 2) and .6 (group 0)
    ("decreasing", 24, [10, 7, 5, 2]),
    ("spindle", 24, [4, 8, 8, 4]),
    ("bottleneck", 24, [8, 4, 4, 8]),
])
def test_named_patterns_on_12_and_24_layers(pattern, num_layers, expected):
    ranges, problems = group_ranges(pattern, 4, num_layers)
    assert problems == []
    assert sizes_of(ranges) == expected
    # contiguous, starting at layer 0, ending at the last layer
    assert ranges[0][0] == 0 and ranges[-1][1] == num_layers - 1
    assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:]))


def test_t5_base_spindle_ranges():
    # T5-base: 12 encoder + 12 decoder blocks, one global index 0..23
    ranges, problems = group_ranges("spindle", 4, 24)
    assert problems == []
    assert ranges == [(0, 3), (4, 11), (12, 19), (20, 23)]


# -- other group counts ----------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, num_groups, ratios", [
    ("spindle", 3, [1, 2, 1]),
    ("bottleneck", 3, [2, 1, 2]),
    ("spindle", 5, [1, 2, 2, 2, 1]),
    ("bottleneck", 5, [2, 1, 1, 1, 2]),
    ("increasing", 6, [1, 2, 3, 4, 5, 6]),
    ("decreasing", 3, [3, 2, 1]),
    ("uniform", 2, [1, 1]),
    ("spindle", 2, [1, 1]),      # no middle: both ends are small
    ("bottleneck", 2, [1, 1]),   # no middle to be small: flat
    ("spindle", 1, [1]),
    ("bottleneck", 1, [1]),
    ("increasing", 1, [1]),
])
def test_ratios_for_other_group_counts(pattern, num_groups, ratios):
    assert pattern_ratios(pattern, num_groups) == ratios


@pytest.mark.parametrize("pattern, num_groups, num_layers, expected", [
    ("spindle", 3, 12, [3, 6, 3]),
    # quotas 4.8 2.4 4.8 -> floors 4 2 4; the two .8 remainders win (ties go to the earlier group)
    ("bottleneck", 3, 12, [5, 2, 5]),
    ("increasing", 3, 12, [2, 4, 6]),
    # quotas 12k/21 = .57 1.14 1.71 2.29 2.86 3.43 -> 1 1 1 2 2 3 (10); spare to .86 (g4) and .71 (g2)
    ("increasing", 6, 12, [1, 1, 2, 2, 3, 3]),
    # quotas 1.5 x4 -> floors 1 x4; two spare layers, ties broken toward the first groups
    ("uniform", 4, 6, [2, 2, 1, 1]),
    # quotas .6 1.2 1.8 2.4 -> 1 (lifted) 1 1 2 (5); the spare layer to .8 (group 2)
    ("increasing", 4, 6, [1, 1, 2, 2]),
    # quotas 2 1.5 1 .5 -> 2 1 1 1 (lifted): already 5
    ("decreasing", 4, 5, [2, 1, 1, 1]),
    # fewer layers than the ratios want: every group keeps one layer
    ("decreasing", 4, 4, [1, 1, 1, 1]),
    ("uniform", 1, 7, [7]),
    ("spindle", 6, 24, [2, 5, 5, 5, 5, 2]),  # quotas 2.4 4.8 x4 2.4 -> 2 4 4 4 4 2 (20); +1 to each 4.8
])
def test_other_group_counts(pattern, num_groups, num_layers, expected):
    ranges, problems = group_ranges(pattern, num_groups, num_layers)
    assert problems == []
    assert sizes_of(ranges) == expected


def test_lifting_a_group_to_one_layer_takes_it_from_the_largest_surplus():
    # quotas 5/13 * [1, 1, 1, 10] = .38 .38 .38 3.85 -> 1 1 1 3 sums to 6 > 5: the last gives one back
    assert round_sizes([1, 1, 1, 10], 5) == [1, 1, 1, 2]


def test_more_groups_than_layers_is_a_problem():
    ranges, problems = group_ranges("uniform", 5, 4)
    assert ranges == []
    assert problems == ["5 groups need at least 5 layers; the backbone has 4"]


def test_unknown_pattern_is_a_problem():
    ranges, problems = group_ranges("spiral", 4, 12)
    assert ranges == [] and len(problems) == 1 and "'spiral'" in problems[0] and "spindle" in problems[0]


# -- largest-remainder rounding, many (L, G) --------------------------------------------------------

CASES = [(num_layers, num_groups) for num_layers in range(1, 49) for num_groups in range(1, min(num_layers, 12) + 1)]


@pytest.mark.parametrize("pattern", PATTERN_NAMES)
def test_rounding_sums_to_the_layer_count_with_every_group_nonempty(pattern):
    for num_layers, num_groups in CASES:
        ratios = pattern_ratios(pattern, num_groups)
        sizes = round_sizes(ratios, num_layers)
        assert len(sizes) == num_groups
        assert sum(sizes) == num_layers, (num_layers, num_groups, sizes)
        assert min(sizes) >= 1, (num_layers, num_groups, sizes)
        quotas = [num_layers * r / sum(ratios) for r in ratios]
        if all(q >= 1 for q in quotas):  # nothing lifted: plain largest remainder, within one of each quota
            assert all(abs(s - q) < 1 for s, q in zip(sizes, quotas)), (num_layers, num_groups, sizes)
        if pattern == "uniform":
            assert max(sizes) - min(sizes) <= 1
        if pattern == "increasing":
            assert sizes == sorted(sizes), (num_layers, num_groups, sizes)
        if pattern == "decreasing":
            assert sizes == sorted(sizes, reverse=True), (num_layers, num_groups, sizes)


@pytest.mark.parametrize("ratios, total, expected", [
    ([1, 1, 1], 10, [4, 3, 3]),       # 3.33 each: the spare layer goes to the first
    ([3, 1], 10, [8, 2]),             # quotas 7.5 2.5: tie, earlier group wins
    ([1, 3], 10, [3, 7]),             # quotas 2.5 7.5: tie, earlier group wins
    ([5, 3, 2], 7, [4, 2, 1]),        # quotas 3.5 2.1 1.4 -> 3 2 1 (6); spare to .5
    ([1, 100], 3, [1, 2]),            # quota .03 lifted to 1; 2.97 -> 2
])
def test_round_sizes_hand_cases(ratios, total, expected):
    assert round_sizes(ratios, total) == expected


# -- explicit sizes and ranges ----------------------------------------------------------------------

def test_explicit_sizes():
    ranges, problems = group_ranges([3, 1, 6, 2], 99, 12)  # num_groups is ignored for explicit groupings
    assert problems == []
    assert ranges == [(0, 2), (3, 3), (4, 9), (10, 11)]


def test_explicit_sizes_tuple():
    assert group_ranges((12,), 4, 12) == ([(0, 11)], [])


def test_explicit_sizes_not_summing():
    ranges, problems = group_ranges([3, 3, 3, 2], 4, 12)
    assert ranges == []
    assert problems == ["group sizes [3, 3, 3, 2] sum to 11, but the backbone has 12 layers"]


def test_explicit_sizes_too_many():
    ranges, problems = group_ranges([6, 6, 6, 6], 4, 12)
    assert ranges == [] and problems == ["group sizes [6, 6, 6, 6] sum to 24, but the backbone has 12 layers"]


def test_explicit_sizes_below_one_each_named():
    ranges, problems = group_ranges([6, 0, 7, -1], 4, 12)
    assert ranges == []
    assert problems == [
        "group 1 has size 0; every group needs at least one layer",
        "group 3 has size -1; every group needs at least one layer",
    ]


def test_explicit_ranges():
    ranges, problems = group_ranges([[0, 2], [3, 11], [12, 23]], 4, 24)
    assert problems == []
    assert ranges == [(0, 2), (3, 11), (12, 23)]


def test_explicit_single_layer_ranges():
    ranges, problems = group_ranges([(0, 0), (1, 1), (2, 5)], 4, 6)
    assert problems == [] and sizes_of(ranges) == [1, 1, 4]


def test_range_out_of_range():
    ranges, problems = group_ranges([[0, 5], [6, 12]], 4, 12)
    assert ranges == []
    assert problems == ["group 1 range [6, 12] is out of range: the backbone has layers 0..11"]


def test_negative_range():
    ranges, problems = group_ranges([[-1, 5], [6, 11]], 4, 12)
    assert ranges == [] and problems == ["group 0 range [-1, 5] is out of range: the backbone has layers 0..11"]


def test_range_ending_before_it_starts():
    _, problems = group_ranges([[0, 5], [11, 6]], 4, 12)
    assert problems == ["group 1 range [11, 6] ends before it starts"]


def test_gap_between_ranges():
    ranges, problems = group_ranges([[0, 3], [5, 11]], 4, 12)
    assert ranges == []
    assert problems == ["group 1 starts at layer 5, expected 4: groups must be contiguous and cover every layer"]


def test_overlapping_ranges():
    _, problems = group_ranges([[0, 5], [4, 11]], 4, 12)
    assert problems == ["group 1 starts at layer 4, expected 6: groups must be contiguous and cover every layer"]


def test_ranges_not_starting_at_zero():
    _, problems = group_ranges([[1, 11]], 4, 12)
    assert problems == ["group 0 starts at layer 1, expected 0: groups must be contiguous and cover every layer"]


def test_ranges_not_reaching_the_last_layer():
    _, problems = group_ranges([[0, 5], [6, 10]], 4, 12)
    assert problems == ["groups end at layer 10, but the backbone has layers 0..11"]


def test_several_range_problems_reported_together():
    _, problems = group_ranges([[0, 3], [5, 7], [8, 30]], 4, 12)
    assert problems == [
        "group 1 starts at layer 5, expected 4: groups must be contiguous and cover every layer",
        "group 2 range [8, 30] is out of range: the backbone has layers 0..11",
    ]


@pytest.mark.parametrize("grouping", [[], [[0, 5], 6], [[0, 1, 2]], [1.5, 2.5], [True, 11], ["a", "b"], [[0, "5"]]])
def test_malformed_grouping(grouping):
    ranges, problems = group_ranges(grouping, 4, 12)
    assert ranges == []
    assert len(problems) == 1 and "must be a pattern name, a list of group sizes, or a list of [first, last]" in problems[0]
