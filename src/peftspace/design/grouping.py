"""Layer grouping: contiguous ranges of the global layer index.

A grouping is a named pattern of size ratios (see ``PATTERNS``), explicit sizes, or explicit
inclusive ``[first, last]`` ranges. Pattern ratios are rounded by largest remainder with every
group at least one layer (SPEC.md; the ratios are our recollection of the paper, not verified).
"""

from __future__ import annotations

import math

PATTERN_NAMES = ("uniform", "increasing", "decreasing", "spindle", "bottleneck")


def pattern_ratios(pattern: str, num_groups: int) -> list[int]:
    """Size ratios of a named pattern for any number of groups (4 groups: the paper's shapes)."""
    g = num_groups
    if pattern == "uniform":
        return [1] * g
    if pattern == "increasing":
        return list(range(1, g + 1))
    if pattern == "decreasing":
        return list(range(g, 0, -1))
    if pattern == "spindle":  # small ends, large middle: 1:2:2:1
        return [1 if i in (0, g - 1) else 2 for i in range(g)]
    if pattern == "bottleneck":  # large ends, small middle: 2:1:1:2
        return [2 if i in (0, g - 1) and g > 2 else 1 for i in range(g)]
    raise KeyError(pattern)


def round_sizes(ratios: list[int], total: int) -> list[int]:
    """Split ``total`` in proportion to ``ratios``: largest remainder, every part at least one."""
    quotas = [total * r / sum(ratios) for r in ratios]
    sizes = [max(1, math.floor(q)) for q in quotas]
    while sum(sizes) > total:  # only when a quota below 1 was lifted to 1
        i = max((i for i in range(len(sizes)) if sizes[i] > 1), key=lambda i: sizes[i] - quotas[i])
        sizes[i] -= 1
    while sum(sizes) < total:
        i = max(range(len(sizes)), key=lambda i: (quotas[i] - sizes[i], -i))
        sizes[i] += 1
    return sizes


def group_ranges(grouping, num_groups: int, num_layers: int) -> tuple[list[tuple[int, int]], list[str]]:
    """Resolve a grouping to inclusive layer ranges; returns (ranges, problems)."""
    if isinstance(grouping, str):
        if grouping not in PATTERN_NAMES:
            return [], [f"grouping={grouping!r} is not a known pattern; use one of {list(PATTERN_NAMES)} or explicit sizes"]
        if num_layers < num_groups:
            return [], [f"{num_groups} groups need at least {num_groups} layers; the backbone has {num_layers}"]
        return _ranges_from_sizes(round_sizes(pattern_ratios(grouping, num_groups), num_layers)), []
    items = list(grouping)
    if items and all(_is_pair(item) for item in items):
        return _check_ranges([tuple(item) for item in items], num_layers)
    if items and all(_is_int(item) for item in items):
        problems = [f"group {i} has size {s}; every group needs at least one layer" for i, s in enumerate(items) if s < 1]
        if not problems and sum(items) != num_layers:
            problems.append(f"group sizes {items} sum to {sum(items)}, but the backbone has {num_layers} layers")
        return ([] if problems else _ranges_from_sizes(items)), problems
    return [], [f"grouping={grouping!r} must be a pattern name, a list of group sizes, or a list of [first, last] layer ranges"]


def _ranges_from_sizes(sizes: list[int]) -> list[tuple[int, int]]:
    ranges, start = [], 0
    for size in sizes:
        ranges.append((start, start + size - 1))
        start += size
    return ranges


def _check_ranges(ranges: list[tuple[int, int]], num_layers: int) -> tuple[list[tuple[int, int]], list[str]]:
    problems, expected_start = [], 0
    for i, (first, last) in enumerate(ranges):
        if not (0 <= first < num_layers and 0 <= last < num_layers):
            problems.append(f"group {i} range [{first}, {last}] is out of range: the backbone has layers 0..{num_layers - 1}")
        elif last < first:
            problems.append(f"group {i} range [{first}, {last}] ends before it starts")
        elif first != expected_start:
            problems.append(f"group {i} starts at layer {first}, expected {expected_start}: groups must be contiguous and cover every layer")
        expected_start = last + 1
    if not problems and expected_start != num_layers:
        problems.append(f"groups end at layer {expected_start - 1}, but the backbone has layers 0..{num_layers - 1}")
    return ([] if problems else ranges), problems


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_pair(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(v) for v in value)
