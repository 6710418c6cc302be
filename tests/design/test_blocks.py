"""Paired blocks: options differ only in the compared component, aliases merged, designs deduplicated by what they build."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import bert_like

from peftspace.design import Design, DesignError, resolve
from peftspace.design.blocks import build_key, draw_blocks, find_aliases, instantiate
from peftspace.design.grouping import PATTERN_NAMES, group_ranges
from peftspace.design.space import builtin_spaces

SPEC = bert_like()  # MiniLM's shapes: 6 layers


def _layers(design: Design) -> list:
    return [(layer.index, sorted(layer.sizes.items())) for layer in resolve(design, SPEC).layers if layer.sizes]


def test_groupings_with_the_same_sizes_on_six_layers_are_aliases():
    sizes = {p: [b - a + 1 for a, b in group_ranges(p, 4, 6)[0]] for p in PATTERN_NAMES}
    assert sizes["uniform"] == sizes["decreasing"] == [2, 2, 1, 1]  # the case the issue names
    aliases = find_aliases(builtin_spaces()["S0"], "grouping", PATTERN_NAMES, SPEC, seed=0)
    for option in PATTERN_NAMES:  # raced as the first listed option with the same sizes
        first = next(p for p in PATTERN_NAMES if sizes[p] == sizes[option])
        assert aliases[option] == first


def test_allocation_rules_are_not_aliases_and_tuned_all_is_not_any():
    space = builtin_spaces()["S1"]
    assert find_aliases(space, "allocation", ("uniform", "increasing", "decreasing"), SPEC) == \
        {"uniform": "uniform", "increasing": "increasing", "decreasing": "decreasing"}
    assert find_aliases(builtin_spaces()["S2"], "tuned", ("all", "any"), SPEC) == {"all": "all", "any": "any"}


def test_blocks_differ_only_in_the_compared_component_and_share_their_seed():
    space = builtin_spaces()["S1"]
    blocks = draw_blocks(space, "allocation", ("uniform", "increasing", "decreasing"), 8, [0, 2], SPEC)
    assert blocks == draw_blocks(space, "allocation", ("uniform", "increasing", "decreasing"), 8, [0, 2], SPEC)
    assert len({b["seed"] for b in blocks}) == 8
    for block in blocks:
        designs = block["designs"]
        for option, design in designs.items():
            assert design.allocation == option
            assert replace(design, allocation="uniform") == replace(block["context"], allocation="uniform")
            resolve(design, SPEC)  # feasible under every option
    # contexts differ between blocks (the other components are drawn)
    assert len({b["context"].to_json() for b in blocks}) > 1


def test_tuned_any_draws_one_subset_per_block():
    blocks = draw_blocks(builtin_spaces()["S2"], "tuned", ("all", "any"), 30, 1, SPEC)
    assert all(b["designs"]["all"].tuned_groups is None for b in blocks)
    subsets = {b["designs"]["any"].tuned_groups for b in blocks}
    assert len(subsets) > 3 and all(t is None or 0 < len(t) < 4 for t in subsets)


def test_strategies_of_untuned_groups_build_nothing_different():
    base = Design(grouping="spindle", num_groups=4, tuned_groups=(0, 1), strategies=("L", "A", "P", "B"))
    other = replace(base, strategies=("L", "A", "AL", "PBL"))
    assert build_key(base, SPEC) == build_key(other, SPEC)
    assert _layers(base) == _layers(other)
    assert build_key(base, SPEC) != build_key(replace(base, strategies=("A", "A", "P", "B")), SPEC)


def test_assignment_options_and_bad_components():
    context = Design(grouping="spindle", num_groups=4, strategies=("L",) * 4)
    assert instantiate(context, "assignment", "AL,AP,APB,PBL", 4, 0).strategies == ("AL", "AP", "APB", "PBL")
    with pytest.raises(DesignError, match="names 2 subsets for 4 groups"):
        instantiate(context, "assignment", "AL,AP", 4, 0)
    with pytest.raises(DesignError, match="unknown block component"):
        instantiate(context, "strategy", "L", 4, 0)
    with pytest.raises(DesignError, match="must be 'all' or 'any'"):
        instantiate(context, "tuned", "some", 4, 0)
