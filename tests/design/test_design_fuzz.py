"""Property tests: any plain data either becomes a design and a plan, or raises DesignError.

Regressions for what earlier fuzzing found (mixed-type option keys, huge budgets and JSON integers,
non-finite scales, non-integer num_groups) are pinned as plain tests at the end.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import bert_like, t5_like
from peftspace.design import ALLOCATIONS, PATTERN_NAMES, Design, DesignError, resolve
from peftspace.design.grouping import group_ranges
from peftspace.design.options import StrategyOptions

SPECS = {"bert": bert_like(num_parameters=5_000_000), "t5": t5_like(num_parameters=4_000_000)}
FIELDS = ("grouping", "num_groups", "allocation", "tuned_groups", "strategies", "budget_fraction", "budget_params",
          "options", "name", "description")
OPTION_KEYS = ("adapter_placement", "adapter_nonlinearity", "adapter_scaling", "prefix_reparameterize",
               "prefix_mlp_hidden", "lora_targets", "lora_alpha", "lora_scaling", "lora_dropout")
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- garbage --------------------------------------------------------------------------------------
ints = st.integers(min_value=-(10**12), max_value=10**12)
scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=8), st.sampled_from(["A", "PB", "lora", "uniform", "spindle", "q", "relu", "", "AX"]))
garbage = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=5), inner, max_size=4)), max_leaves=12)
small_ints = st.integers(min_value=-3, max_value=14)

field_values = {
    "grouping": st.one_of(st.sampled_from(PATTERN_NAMES), st.lists(small_ints, max_size=7),
                          st.lists(st.lists(small_ints, min_size=2, max_size=2), max_size=6), garbage),
    "num_groups": st.one_of(st.none(), small_ints, garbage),
    "allocation": st.one_of(st.sampled_from(ALLOCATIONS), garbage),
    "tuned_groups": st.one_of(st.none(), st.lists(small_ints, max_size=5), garbage),
    "strategies": st.one_of(st.lists(st.sampled_from(["A", "P", "B", "L", "AL", "PBL", "APBL", "adapter+lora", "", "X"]),
                                     max_size=6), st.text(max_size=5), garbage),
    "budget_fraction": st.one_of(st.none(), st.floats(min_value=-0.1, max_value=1.5), garbage),
    "budget_params": st.one_of(st.none(), st.integers(min_value=-10, max_value=10**7), garbage),
    "options": st.one_of(
        st.dictionaries(st.one_of(st.sampled_from(OPTION_KEYS), st.text(max_size=6)), garbage, max_size=5),
        st.fixed_dictionaries({}, optional={
            "adapter_placement": st.sampled_from(["pfeiffer", "houlsby", "parallel", "x"]),
            "prefix_reparameterize": st.booleans(),
            "prefix_mlp_hidden": st.integers(min_value=-1, max_value=64),
            "lora_targets": st.lists(st.sampled_from(["q", "k", "v", "o", "ffn_in", "ffn_out", "z"]), max_size=4),
            "lora_dropout": st.floats(min_value=-0.5, max_value=1.5),
        }),
        garbage),
    "name": st.one_of(st.text(max_size=5), garbage),
    "description": st.one_of(st.text(max_size=5), garbage),
}

# near-valid: well-typed values that are often wrong for the backbone (sizes not summing, ranges out of
# range, more groups than layers, budgets too small for a strategy), so resolve's own errors get exercised
near_valid = st.fixed_dictionaries({}, optional={
    "grouping": st.one_of(st.sampled_from(PATTERN_NAMES), st.lists(st.integers(0, 4), min_size=1, max_size=7),
                          st.lists(st.lists(st.integers(-1, 7), min_size=2, max_size=2), min_size=1, max_size=5)),
    "num_groups": st.integers(1, 8),
    "allocation": st.sampled_from(ALLOCATIONS),
    "tuned_groups": st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True),
    "strategies": st.lists(st.lists(st.sampled_from("APBL"), min_size=1, max_size=4, unique=True).map("".join),
                           min_size=1, max_size=1),
    "budget_params": st.integers(1, 200_000),
    "options": st.fixed_dictionaries({}, optional={"adapter_placement": st.sampled_from(["pfeiffer", "houlsby"]),
                                                   "lora_targets": st.just(["q", "k", "v", "o"])}),
})

random_design_dicts = st.one_of(
    near_valid,
    st.fixed_dictionaries({}, optional=field_values),
    st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=6), ints), garbage, max_size=6),
    garbage,
)


@SETTINGS
@given(data=random_design_dicts, spec=st.sampled_from(sorted(SPECS)))
def test_random_data_raises_nothing_but_design_error(data, spec):
    try:
        design = Design.from_dict(data)
    except DesignError as error:
        assert error.problems and all(isinstance(p, str) and p for p in error.problems)
        return
    event("validated")
    # a design that validated survives its own serialization (compared as text: NaN != NaN, see below)
    text = design.to_json()
    assert Design.from_json(text).to_json() == text
    # ...and resolves to a plan or names what is wrong
    try:
        plan = resolve(design, SPECS[spec])
    except DesignError as error:
        assert error.problems
        event("validated, then infeasible or mis-grouped")
        return
    event("planned")
    assert plan.layers and all(size >= 1 for layer in plan.layers for size in layer.sizes.values())


# -- valid designs ---------------------------------------------------------------------------------

@st.composite
def valid_designs(draw, num_layers: int):
    if draw(st.booleans()):
        num_groups = draw(st.integers(min_value=1, max_value=min(num_layers, 6)))
        grouping = draw(st.sampled_from(PATTERN_NAMES))
        extra = {"num_groups": num_groups}
    else:  # a random composition of num_layers into groups, as explicit sizes or as ranges
        cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=num_layers - 1), max_size=5)))
        bounds = [0, *cuts, num_layers]
        sizes = [b - a for a, b in zip(bounds, bounds[1:])]
        num_groups = len(sizes)
        grouping = sizes if draw(st.booleans()) else [[a, b - 1] for a, b in zip(bounds, bounds[1:])]
        extra = {}
    tuned = draw(st.one_of(st.none(), st.lists(st.integers(0, num_groups - 1), min_size=1, max_size=num_groups, unique=True)))
    subset = st.lists(st.sampled_from("APBL"), min_size=1, max_size=4, unique=True).map("".join)
    strategies = draw(st.one_of(st.lists(subset, min_size=1, max_size=1),
                                st.lists(subset, min_size=num_groups, max_size=num_groups)))
    options = draw(st.fixed_dictionaries({}, optional={
        "adapter_placement": st.sampled_from(["pfeiffer", "houlsby", "parallel"]),
        "prefix_reparameterize": st.booleans(),
        "lora_targets": st.lists(st.sampled_from(["q", "k", "v", "o", "ffn_in", "ffn_out"]), min_size=1, max_size=6, unique=True),
    }))
    return {"grouping": grouping, **extra, "allocation": draw(st.sampled_from(ALLOCATIONS)), "tuned_groups": tuned,
            "strategies": strategies, "budget_fraction": draw(st.floats(min_value=0.002, max_value=0.05)), "options": options}


@SETTINGS
@given(st.data())
def test_valid_designs_plan_exactly_the_tuned_layers_or_say_why_not(data):
    spec = SPECS[data.draw(st.sampled_from(sorted(SPECS)))]
    raw = data.draw(valid_designs(spec.num_layers))
    design = Design.from_dict(raw)  # well-formed by construction: must validate
    ranges, problems = group_ranges(design.grouping, design.group_count, spec.num_layers)
    assert problems == []
    try:
        plan = resolve(design, spec)
    except DesignError as error:
        event("infeasible")
        # the design is well-formed, so the only possible reason is a budget too small somewhere
        assert error.problems and all(p.startswith("layer ") for p in error.problems), error.problems
        return
    event("planned")
    expected = [i for g in design.tuned() for i in range(ranges[g][0], ranges[g][1] + 1)]
    assert [layer.index for layer in plan.layers] == expected
    assert list(plan.groups) == ranges
    assert sum(layer.budget for layer in plan.layers) == plan.budget == round(raw["budget_fraction"] * spec.num_parameters)
    subsets = design.group_strategies()
    for layer in plan.layers:
        assert ranges[layer.group][0] <= layer.index <= ranges[layer.group][1]
        assert set(layer.sizes) == set(subsets[layer.group])
        assert all(size >= 1 for size in layer.sizes.values())
        assert layer.stack == spec.layers[layer.index].stack
    if plan.training_total != plan.total:
        assert any("reparameterization" in note for note in plan.notes)


# -- regressions: bugs the fuzzing found ------------------------------------------------------------------------------

def test_option_keys_of_mixed_types_give_a_design_error():
    with pytest.raises(DesignError, match="unknown key"):
        Design.from_dict({"options": {1: 0, "x": 0}})


def test_budget_beyond_float_range_gives_a_design_error():
    with pytest.raises(DesignError):
        resolve(Design().with_budget(params=10**400), bert_like())


def test_json_with_a_huge_int_literal_gives_a_design_error():
    with pytest.raises(DesignError):
        Design.from_json('{"budget_params": ' + "9" * 5000 + "}")


@pytest.mark.parametrize("field", ["adapter_scaling", "lora_alpha"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_scales_are_rejected(field, value):
    assert StrategyOptions(**{field: value}).problems() == [f"options.{field}={value!r} must be a positive number"]


@pytest.mark.parametrize("grouping, num_groups", [((3, 3), 2.0), ((6,), True)])
def test_num_groups_must_be_an_integer_with_explicit_groupings(grouping, num_groups):
    assert Design(grouping=grouping, num_groups=num_groups).problems() != []


def test_options_round_trip_exactly():
    options = StrategyOptions(adapter_placement="parallel", adapter_scaling=4.0, prefix_reparameterize=True,
                              prefix_mlp_hidden=32, lora_targets=("q", "o", "ffn_in"), lora_alpha=8.0,
                              lora_scaling="rslora", lora_dropout=0.05)
    assert options.to_dict()["lora_targets"] == ["q", "o", "ffn_in"]
    assert StrategyOptions.from_dict(options.to_dict()) == options
