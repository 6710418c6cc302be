"""Designs: JSON/YAML round-trips, and validation that names every problem with one clear error."""

from __future__ import annotations

import json

import pytest

from conftest import bert_like, t5_like
from peftspace.design import Design, DesignError, StrategyOptions, resolve
from peftspace.design.design import canonical_subset
from peftspace.design.presets import PRESETS, preset

EXPLICIT = {
    "sizes": Design(grouping=(3, 1, 6, 2), strategies=("AL", "P", "APB", "BL"), tuned_groups=(0, 2, 3),
                    allocation="decreasing", name="sizes"),
    "ranges": Design(grouping=((0, 2), (3, 11)), strategies=("PL",), name="ranges",
                     options=StrategyOptions(lora_targets=("q", "k", "v", "o", "ffn_in"), lora_scaling="rslora")),
    "params-budget": Design(grouping="bottleneck", num_groups=3, strategies=("A", "AB", "L"),
                            options=StrategyOptions(adapter_placement="houlsby", adapter_nonlinearity="gelu",
                                                    prefix_reparameterize=True, prefix_mlp_hidden=64,
                                                    lora_dropout=0.1, lora_alpha=8)).with_budget(params=12_345),
}
DESIGNS = {**{f"preset:{k}": v for k, v in PRESETS.items()}, **{f"explicit:{k}": v for k, v in EXPLICIT.items()}}


def problems_of(call) -> list[str]:
    with pytest.raises(DesignError) as caught:
        call()
    return caught.value.problems


# -- round-trips --------------------------------------------------------------------------------------

def test_presets_are_the_expected_set():
    assert sorted(PRESETS) == ["adapter", "bitfit", "lora", "mam", "parallel-adapter", "prefix", "s4-t5-base-recalled"]
    assert all(design.name == name for name, design in PRESETS.items())
    assert preset("mam") is PRESETS["mam"]


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_dict_json_yaml_round_trips(name):
    design = DESIGNS[name]
    assert design.validate() is design
    assert Design.from_dict(design.to_dict()) == design
    assert Design.from_json(design.to_json()) == design
    assert Design.from_yaml(design.to_yaml()) == design
    assert json.loads(design.to_json()) == design.to_dict()


@pytest.mark.parametrize("name", sorted(DESIGNS))
@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_save_and_load(name, suffix, tmp_path):
    design = DESIGNS[name]
    path = design.save(tmp_path / f"design{suffix}")
    assert path == tmp_path / f"design{suffix}"
    text = path.read_text()
    if suffix == ".json":
        assert json.loads(text) == design.to_dict()
    else:
        assert not text.lstrip().startswith("{")  # block YAML, not JSON
    assert Design.load(path) == design
    assert Design.load(str(path)) == design


def test_round_trip_preserves_the_plan():
    design = EXPLICIT["sizes"]
    spec = bert_like(num_layers=12, num_parameters=100_000_000)
    assert resolve(Design.from_yaml(design.to_yaml()), spec) == resolve(design, spec)


def test_hand_written_yaml():
    design = Design.from_yaml(
        "grouping: [[0, 3], [4, 11], [12, 19], [20, 23]]\n"
        "strategies: [adapter+lora, 'A,P', APB, PBL]\n"
        "budget_params: 200000\n"
        "options: {lora_targets: [q, v, o]}\n")
    assert design.grouping == ((0, 3), (4, 11), (12, 19), (20, 23))
    assert design.budget_params == 200_000 and design.budget_fraction is None
    assert design.group_strategies() == ["AL", "AP", "APB", "PBL"]
    assert design.options.lora_targets == ("q", "v", "o")
    assert design.allocation == "uniform" and design.tuned() == [0, 1, 2, 3]


def test_single_strategy_string_applies_to_every_group():
    design = Design.from_dict({"strategies": "LA", "num_groups": 3})
    assert design.strategies == ("LA",)
    assert design.group_strategies() == ["AL", "AL", "AL"]


@pytest.mark.parametrize("subset, canonical", [("LA", "AL"), ("lora,adapter", "AL"), ("bitfit", "B"), ("p+b", "PB"),
                                               (["L", "prefix"], "PL"), ("BLPA", "APBL")])
def test_canonical_subset(subset, canonical):
    assert canonical_subset(subset) == canonical


def test_recalled_s4_preset_says_so():
    s4 = PRESETS["s4-t5-base-recalled"]
    assert s4.description.startswith("RECALLED, NOT VERIFIED")
    assert "not available to check" in s4.description
    assert (s4.grouping, s4.num_groups, s4.allocation, s4.tuned_groups) == ("spindle", 4, "uniform", None)
    assert s4.group_strategies() == ["AL", "AP", "APB", "PBL"]
    # and it survives serialization with its warning intact
    assert "RECALLED, NOT VERIFIED" in Design.from_yaml(s4.to_yaml()).description


def test_s4_preset_on_a_t5_like_backbone():
    plan = resolve(PRESETS["s4-t5-base-recalled"], t5_like())
    assert plan.groups == ((0, 0), (1, 2), (3, 4), (5, 5))  # spindle 1:2:2:1 on 6 layers
    assert [sorted(l.sizes) for l in plan.layers] == [["A", "L"], ["A", "P"], ["A", "P"], ["A", "B", "P"],
                                                      ["A", "B", "P"], ["B", "L", "P"]]
    assert abs(plan.total - plan.budget) <= 0.02 * plan.budget


def test_with_budget():
    design = PRESETS["lora"].with_budget(params=1000)
    assert (design.budget_fraction, design.budget_params) == (None, 1000)
    assert PRESETS["lora"].with_budget(fraction=0.01).budget_fraction == 0.01


# -- validation: every problem at once ------------------------------------------------------------

def test_every_problem_is_listed_at_once():
    design = Design(grouping="spiral", allocation="sideways", budget_fraction=2.0, name=3,
                    options=StrategyOptions(adapter_placement="inside", lora_targets=("q", "x")))
    problems = problems_of(design.validate)
    assert problems == [
        "grouping='spiral' is not a known pattern; use one of "
        "['uniform', 'increasing', 'decreasing', 'spindle', 'bottleneck'] or explicit sizes",
        "allocation='sideways' is unknown; use one of ['uniform', 'increasing', 'decreasing']",
        "budget_fraction=2.0 must be a number in (0, 1], e.g. 0.005 for 0.5%",
        "options.adapter_placement='inside' is unknown; use one of ['pfeiffer', 'houlsby', 'parallel']",
        "options.lora_targets has unknown target(s) ['x']; use names from ['q', 'k', 'v', 'o', 'ffn_in', 'ffn_out']",
        "name=3 must be text",
    ]
    with pytest.raises(DesignError, match=r"^6 problems:\n  - grouping='spiral'"):
        design.validate()


def test_every_problem_is_listed_at_once_from_dict():
    problems = problems_of(lambda: Design.from_dict({
        "grouping": [3, 3, 3, 3],
        "strategies": ["AX", "", "AA", "L"],
        "tuned_groups": [0, 7, 0],
        "budget_fraction": 0.01,
        "budget_params": 5000,
        "options": {"lora_dropout": 1.5, "prefix_mlp_hidden": 0},
    }))
    assert problems == [
        "strategies[0]='AX' has unknown strategy 'X'; use letters from A (adapter), P (prefix), B (bitfit), L (lora)",
        "strategies[1] is empty; every group needs at least one strategy (untune a group with tuned_groups)",
        "strategies[2]='AA' repeats a strategy",
        "tuned_groups has index(es) [7] out of range: groups are 0..3",
        "tuned_groups=[0, 7, 0] repeats a group",
        "set only one of budget_fraction (e.g. 0.005) and budget_params (e.g. 100000)",
        "options.prefix_mlp_hidden=0 must be a positive integer",
        "options.lora_dropout=1.5 must be a number in [0, 1)",
    ]


def test_design_error_is_a_value_error_with_one_problem_as_its_message():
    error = DesignError("just this")
    assert isinstance(error, ValueError)
    assert str(error) == "just this" and error.problems == ["just this"]


# -- validation: one clear error each ----------------------------------------------------------------

def test_group_sizes_not_summing_fail_at_resolve_time():
    design = Design(grouping=(3, 3, 3, 2))
    assert design.validate() is design  # no backbone yet: nothing to check the sum against
    assert problems_of(lambda: resolve(design, bert_like(num_layers=12))) == [
        "group sizes [3, 3, 3, 2] sum to 11, but the backbone has 12 layers"]


def test_unknown_strategy_letter():
    assert problems_of(lambda: Design(strategies=("AQ",)).validate()) == [
        "strategies[0]='AQ' has unknown strategy 'Q'; use letters from A (adapter), P (prefix), B (bitfit), L (lora)"]


def test_unknown_strategy_name():
    assert problems_of(lambda: Design.from_dict({"strategies": ["adapter,dora"]})) == [
        "strategies[0]='adapter,dora' has unknown strategy 'DORA'; "
        "use letters from A (adapter), P (prefix), B (bitfit), L (lora)"]


def test_budget_too_small_for_a_strategy():
    design = Design.from_dict({"strategies": ["L", "L", "A", "L"], "budget_params": 3600})
    problems = problems_of(lambda: resolve(design, bert_like()))
    # 600 a layer: LoRA 600/1536 = .39 fails everywhere, the adapter (600-384)/769 = .28 in group 2
    assert len(problems) == 6
    assert "layer 4 (group 2): adapter size rounds below 1 (0.28) with 600 parameters" in problems[4]
    assert all(("lora" in p) != (i == 4) for i, p in enumerate(problems))


def test_layer_out_of_range():
    design = Design(grouping=((0, 5), (6, 12)))
    assert problems_of(lambda: resolve(design, bert_like(num_layers=12))) == [
        "group 1 range [6, 12] is out of range: the backbone has layers 0..11"]


def test_unknown_field():
    assert problems_of(lambda: Design.from_dict({"groupin": "uniform", "budget": 1})) == [
        "design has unknown field(s) ['budget', 'groupin']; known fields are ['allocation', 'budget_fraction', "
        "'budget_params', 'description', 'grouping', 'name', 'num_groups', 'options', 'strategies', 'tuned_groups']"]


def test_unknown_option():
    problems = problems_of(lambda: Design.from_dict({"options": {"lora_rank": 8}}))
    assert len(problems) == 1 and problems[0].startswith("options has unknown key(s) ['lora_rank']; known keys are [")


@pytest.mark.parametrize("data, expected", [
    (["uniform"], "a design must be a mapping of fields, got list"),
    (None, "a design must be a mapping of fields, got NoneType"),
    ({"options": [1]}, "options=[1] must be a mapping"),
    ({"num_groups": 0}, "num_groups=0 must be a positive integer"),
    ({"grouping": [4, 4], "num_groups": 3}, "num_groups=3 disagrees with the 2 explicit groups; leave num_groups out"),
    ({"grouping": {"a": 1}},
     "grouping={'a': 1} must be a pattern name, a list of group sizes, or a list of [first, last] layer ranges"),
    ({"strategies": ["A", "P"]}, "strategies lists 2 subsets for 4 groups; give one per group or a single one for all"),
    ({"tuned_groups": []}, "tuned_groups=() must be a non-empty list of group indices (or left out to tune all)"),
    ({"budget_fraction": 0}, "budget_fraction=0 must be a number in (0, 1], e.g. 0.005 for 0.5%"),
    ({"budget_fraction": "0.5%"}, "budget_fraction='0.5%' must be a number in (0, 1], e.g. 0.005 for 0.5%"),
    ({"budget_params": -5}, "budget_params=-5 must be a positive integer"),
    ({"budget_params": 10.5}, "budget_params=10.5 must be a positive integer"),
    ({"budget_fraction": 0.01, "budget_params": 100}, "set only one of budget_fraction (e.g. 0.005) and budget_params (e.g. 100000)"),
    ({"options": {"lora_targets": "q"}}, "options.lora_targets='q' must be a non-empty list drawn from "
                                         "['q', 'k', 'v', 'o', 'ffn_in', 'ffn_out']"),
    ({"options": {"prefix_reparameterize": "yes"}}, "options.prefix_reparameterize='yes' must be true or false"),
])
def test_one_clear_error(data, expected):
    assert problems_of(lambda: Design.from_dict(data)) == [expected]


def test_malformed_json():
    problems = problems_of(lambda: Design.from_json('{"grouping": "uniform",'))
    assert len(problems) == 1 and problems[0].startswith("design JSON is malformed: ")


def test_malformed_yaml():
    problems = problems_of(lambda: Design.from_yaml("grouping: [uniform\nstrategies: [A"))
    assert len(problems) == 1 and problems[0].startswith("design YAML is malformed: ")


def test_yaml_that_is_not_a_mapping():
    assert problems_of(lambda: Design.from_yaml("- uniform\n- spindle\n")) == ["a design must be a mapping of fields, got list"]
    assert problems_of(lambda: Design.from_yaml("")) == ["a design must be a mapping of fields, got NoneType"]


def test_yaml_refuses_python_tags():
    problems = problems_of(lambda: Design.from_yaml("grouping: !!python/object/apply:os.system ['true']\n"))
    assert problems[0].startswith("design YAML is malformed: ")


def test_missing_file(tmp_path):
    for name in ("nope.json", "nope.yaml"):
        path = tmp_path / name
        assert problems_of(lambda: Design.load(path)) == [f"design file {str(path)!r} does not exist"]


def test_file_that_is_not_text(tmp_path):
    path = tmp_path / "design.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    problems = problems_of(lambda: Design.load(path))
    assert problems[0].startswith(f"design file {str(path)!r} cannot be read as UTF-8 text")


def test_malformed_file(tmp_path):
    path = tmp_path / "design.yaml"
    path.write_text("grouping: spindle\nallocation: [\n")
    assert problems_of(lambda: Design.load(path))[0].startswith("design YAML is malformed: ")


def test_unknown_preset():
    assert problems_of(lambda: preset("dora")) == [f"unknown preset 'dora'; presets are {sorted(PRESETS)}"]
