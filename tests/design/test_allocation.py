"""Analytic counts, budget splitting and ``resolve``, checked against hand computations.

Specs (tests/design/conftest.py):
  bert_like(): 6 layers, d=384, kv_dim=384, q/k/v/o 384->384 with bias, FFN 384->1536->384 with bias,
      two LayerNorm biases of 384; num_parameters 22.7M, so 0.5% is 113,500.
  t5_like(): 3 encoder + 3 decoder layers, d=64, kv_dim=32 (q/k/v 64->32, o 32->64), FFN 64->256->64,
      no biases, no norm biases; decoder layers add a cross-attention; num_parameters 10M.
"""

from __future__ import annotations

import json

import pytest

from conftest import bert_like, t5_like
from peftspace.design import Design, DesignError, Plan, StrategyOptions, resolve, strategy_count
from peftspace.design.allocation import allocation_weights, split_integer
from peftspace.design.counts import adapter_cost, bitfit_cost, lora_cost, prefix_cost, prefix_training_cost

DEFAULT = StrategyOptions()
BERT = bert_like()
T5 = t5_like()
ENC, DEC = T5.layers[0], T5.layers[5]


def params_design(params: int, **fields) -> Design:
    return Design(**fields).with_budget(params=params)


# -- analytic counts ------------------------------------------------------------------------------

@pytest.mark.parametrize("layer, placement, size, expected", [
    (BERT.layers[0], "pfeiffer", 8, 2 * 384 * 8 + 8 + 384),          # 6536
    (BERT.layers[0], "parallel", 8, 6536),                           # one site, beside the FFN
    (BERT.layers[0], "houlsby", 8, 2 * 6536),                        # two sites
    (BERT.layers[0], "pfeiffer", 1, 2 * 384 + 1 + 384),              # 1153
    (ENC, "pfeiffer", 8, 2 * 64 * 8 + 8 + 64),                       # 1096: adapters live at d_model, not kv_dim
    (DEC, "houlsby", 3, 2 * (2 * 64 * 3 + 3 + 64)),                  # 902
])
def test_adapter_count(layer, placement, size, expected):
    options = StrategyOptions(adapter_placement=placement)
    assert strategy_count("A", layer, options, size) == expected
    cost = adapter_cost(layer, options)
    assert cost.at(0) == cost.fixed and cost.at(size) == expected


@pytest.mark.parametrize("layer, size, expected", [
    (BERT.layers[0], 10, 2 * 10 * 384),   # one self-attention: 7680
    (ENC, 10, 2 * 10 * 32),               # kv_dim 32, not d_model 64: 640
    (DEC, 10, 2 * (2 * 10 * 32)),         # self + cross: 1280
])
def test_prefix_count(layer, size, expected):
    assert strategy_count("P", layer, DEFAULT, size) == expected
    assert prefix_cost(layer, DEFAULT).fixed == 0


def test_bitfit_count_sums_linear_outputs_and_norm_biases():
    # BERT: q,k,v,o 4x384 + ffn_in 1536 + ffn_out 384 + two LayerNorm biases 2x384
    assert bitfit_cost(BERT.layers[0], DEFAULT).fixed == 4 * 384 + 1536 + 384 + 2 * 384 == 4224
    # T5 (no biases: BitFit adds them): q,k,v 3x32 + o 64 + ffn_in 256 + ffn_out 64
    assert strategy_count("B", ENC, DEFAULT, 0) == 3 * 32 + 64 + 256 + 64 == 480
    # decoder: the cross-attention's four projections too
    assert strategy_count("B", DEC, DEFAULT, 0) == 2 * (3 * 32 + 64) + 256 + 64 == 640


def test_bitfit_count_ignores_size():
    assert strategy_count("B", BERT.layers[0], DEFAULT, 1) == strategy_count("B", BERT.layers[0], DEFAULT, 50) == 4224


@pytest.mark.parametrize("layer, targets, size, expected", [
    (BERT.layers[0], ("q", "v"), 4, 4 * ((384 + 384) + (384 + 384))),               # 6144
    (BERT.layers[0], ("q", "k", "v", "o", "ffn_in", "ffn_out"), 1, 4 * 768 + 2 * (384 + 1536)),  # 6912
    (BERT.layers[0], ("ffn_out",), 2, 2 * (1536 + 384)),                          # 3840
    (ENC, ("q", "v"), 4, 4 * (2 * (64 + 32))),                                    # 768
    (DEC, ("q", "v"), 4, 4 * (4 * (64 + 32))),                                    # 1536: self and cross
    (DEC, ("o",), 1, 2 * (32 + 64)),                                              # 192
])
def test_lora_count(layer, targets, size, expected):
    options = StrategyOptions(lora_targets=targets)
    assert strategy_count("L", layer, options, size) == expected
    assert lora_cost(layer, options).fixed == 0


def test_prefix_training_count_with_reparameterization():
    # BERT, m=512: per module d*m + m + m*2kv + 2kv = 196608 + 512 + 393216 + 768; per unit d (embedding)
    options = StrategyOptions(prefix_reparameterize=True)
    assert prefix_training_cost(BERT.layers[0], options).fixed == 591104
    assert strategy_count("P", BERT.layers[0], options, 10, training=True) == 591104 + 10 * 384
    assert strategy_count("P", BERT.layers[0], options, 10) == 7680  # budgets count the folded size
    # T5 decoder, m=16: per module 64*16 + 16 + 16*64 + 64 = 2128, two modules; embedding 2 x 64 per unit
    options = StrategyOptions(prefix_reparameterize=True, prefix_mlp_hidden=16)
    assert strategy_count("P", DEC, options, 10, training=True) == 2 * 2128 + 10 * 128
    # without the MLP, training and folded counts agree
    assert strategy_count("P", DEC, DEFAULT, 10, training=True) == strategy_count("P", DEC, DEFAULT, 10) == 1280


# -- splitting the budget ---------------------------------------------------------------------------

@pytest.mark.parametrize("allocation, n, expected", [
    ("uniform", 3, [1.0, 1.0, 1.0]),
    ("increasing", 4, [1.0, 2.0, 3.0, 4.0]),
    ("decreasing", 4, [4.0, 3.0, 2.0, 1.0]),
    ("increasing", 1, [1.0]),
])
def test_allocation_weights(allocation, n, expected):
    assert allocation_weights(allocation, n) == expected


@pytest.mark.parametrize("total, weights, expected", [
    (10, [1, 1, 1], [4, 3, 3]),
    (100, [1, 2, 3, 4], [10, 20, 30, 40]),
    (7, [1, 2, 3, 4], [1, 1, 2, 3]),  # quotas .7 1.4 2.1 2.8 -> 0 1 2 2; spares to .8 (idx 3) and .7 (idx 0)
    (0, [1.0, 1.0], [0, 0]),
    (5, [1.0], [5]),
    (113500, [1, 1, 1, 1, 1, 1], [18917, 18917, 18917, 18917, 18916, 18916]),
])
def test_split_integer_hand_cases(total, weights, expected):
    assert split_integer(total, weights) == expected


@pytest.mark.parametrize("allocation", ["uniform", "increasing", "decreasing"])
def test_split_integer_sums_exactly_and_is_proportional(allocation):
    for n in range(1, 13):
        weights = allocation_weights(allocation, n)
        for total in [*range(0, 60), 997, 113_500, 1_103_872]:
            parts = split_integer(total, weights)
            assert sum(parts) == total, (total, n)
            assert all(abs(p - total * w / sum(weights)) < 1 for p, w in zip(parts, weights)), (total, n, parts)
            if allocation == "increasing":
                assert parts == sorted(parts), (total, n, parts)
            if allocation == "decreasing":
                assert parts == sorted(parts, reverse=True), (total, n, parts)


# -- resolve: LoRA at 0.5% ---------------------------------------------------------------------------

def test_uniform_lora_on_bert_hand_computed():
    plan = resolve(Design(strategies=("L",)), BERT)
    assert plan.budget == 113_500  # 0.5% of 22.7M
    assert [l.budget for l in plan.layers] == [18917] * 4 + [18916] * 2
    # each layer ~12.315 ranks at 1536 per rank; error diffusion: 12 (+.32) 13 (-.37) 12 (-.05) 12 (+.26) 13 (-.42) 12
    assert [l.sizes for l in plan.layers] == [{"L": r} for r in (12, 13, 12, 12, 13, 12)]
    assert plan.total == 74 * 1536 == 113_664
    assert abs(plan.total - plan.budget) <= 0.02 * plan.budget
    assert plan.notes == ()
    assert plan.fraction == pytest.approx(113_664 / 22_700_000)


def test_uniform_lora_on_t5_hand_computed():
    plan = resolve(Design(strategies=("L",)), T5)
    assert plan.budget == 50_000
    assert [l.budget for l in plan.layers] == [8334, 8334, 8333, 8333, 8333, 8333]
    assert [l.stack for l in plan.layers] == ["encoder"] * 3 + ["decoder"] * 3
    # encoder rank costs 192, decoder (self + cross) 384: ~43.4 and ~21.7 ranks, diffused
    assert [l.sizes["L"] for l in plan.layers] == [43, 44, 43, 22, 22, 21]
    assert plan.total == 130 * 192 + 65 * 384 == 49_920
    assert abs(plan.total - plan.budget) <= 0.02 * plan.budget


@pytest.mark.parametrize("spec", [bert_like(), bert_like(num_layers=12, num_parameters=33_000_000), t5_like(),
                                  t5_like(encoder_layers=12, decoder_layers=12, num_parameters=60_000_000)],
                         ids=["bert6", "bert12", "t5-3+3", "t5-12+12"])
@pytest.mark.parametrize("strategies", ["L", "A", "P", "AP", "AL", "APL"])
def test_uniform_designs_land_within_two_percent(spec, strategies):
    plan = resolve(Design(strategies=(strategies,)), spec)
    assert abs(plan.total - plan.budget) <= 0.02 * plan.budget, (plan.total, plan.budget)
    assert plan.notes == ()


# -- resolve: BitFit first, then equal shares --------------------------------------------------------

def test_mixed_layer_counts_by_hand_bert():
    # one tuned layer (layer 0) gets the whole 30,000: BitFit 4224 first, 25,776 left, 8592 each for A, P, L
    design = params_design(30_000, grouping=((0, 0), (1, 5)), tuned_groups=(0,), strategies=("APBL",))
    plan = resolve(design, BERT)
    assert len(plan.layers) == 1
    layer = plan.layers[0]
    assert (layer.index, layer.group, layer.budget) == (0, 0, 30_000)
    # adapter (8592 - 384) / 769 = 10.67 -> 11; prefix 8592 / 768 = 11.19 -> 11; LoRA 8592 / 1536 = 5.59 -> 6
    assert layer.sizes == {"B": 1, "A": 11, "P": 11, "L": 6}
    assert layer.counts == {"B": 4224, "A": 769 * 11 + 384, "P": 768 * 11, "L": 1536 * 6}
    assert layer.total == 4224 + 8843 + 8448 + 9216 == 30_731
    assert layer.describe() == "A=11 P=11 B L=6"
    assert plan.strategy_totals() == {"A": 8843, "P": 8448, "B": 4224, "L": 9216}


def test_mixed_layer_counts_by_hand_t5_decoder():
    # decoder layer 5 alone with 20,000: BitFit 640 first, 19,360 left, 6453.33 each
    design = params_design(20_000, grouping=((0, 4), (5, 5)), tuned_groups=(1,), strategies=("APBL",))
    layer = resolve(design, T5).layers[0]
    assert (layer.index, layer.stack, layer.group) == (5, "decoder", 1)
    # adapter (6453.33 - 64) / 129 = 49.53 -> 50; prefix 6453.33 / 128 = 50.42 -> 50; LoRA 6453.33 / 384 = 16.81 -> 17
    assert layer.sizes == {"B": 1, "A": 50, "P": 50, "L": 17}
    assert layer.counts == {"B": 640, "A": 129 * 50 + 64, "P": 128 * 50, "L": 384 * 17}
    assert layer.total == 640 + 6514 + 6400 + 6528


def test_bitfit_share_is_not_split_with_the_others():
    # same budget with and without BitFit: LoRA alone gets everything; with BitFit it gets budget - 4224
    alone = resolve(params_design(30_000, grouping=((0, 0), (1, 5)), tuned_groups=(0,), strategies=("L",)), BERT)
    with_b = resolve(params_design(30_000, grouping=((0, 0), (1, 5)), tuned_groups=(0,), strategies=("BL",)), BERT)
    assert alone.layers[0].sizes == {"L": 20}          # 30000 / 1536 = 19.53
    assert with_b.layers[0].sizes == {"B": 1, "L": 17}  # 25776 / 1536 = 16.78


def test_plan_counts_agree_with_the_analytic_counts():
    design = Design(grouping="spindle", strategies=("AL", "AP", "APB", "PBL"),
                    options=StrategyOptions(adapter_placement="houlsby", lora_targets=("q", "k", "v", "o")))
    plan = resolve(design, T5)
    assert plan.groups == ((0, 0), (1, 2), (3, 4), (5, 5))
    for layer in plan.layers:
        spec = T5.layers[layer.index]
        for s, size in layer.sizes.items():
            assert layer.counts[s] == strategy_count(s, spec, design.options, size)
            assert size >= 1
    assert [sorted(l.sizes) for l in plan.layers] == [["A", "L"], ["A", "P"], ["A", "P"], ["A", "B", "P"],
                                                      ["A", "B", "P"], ["B", "L", "P"]]


# -- resolve: allocation shapes and tuned groups -----------------------------------------------------

def test_increasing_allocation_budgets_by_hand():
    plan = resolve(Design(allocation="increasing"), BERT)
    # quotas 113500 k / 21 = 5404.76 10809.52 16214.29 21619.05 27023.81 32428.57; spares to .81, .76, .57
    budgets = [l.budget for l in plan.layers]
    assert budgets == [5405, 10809, 16214, 21619, 27024, 32429]
    assert sum(budgets) == 113_500
    ranks = [l.sizes["L"] for l in plan.layers]
    assert ranks == sorted(ranks) and ranks[0] < ranks[-1]


def test_decreasing_allocation_mirrors_increasing():
    plan = resolve(Design(allocation="decreasing"), BERT)
    assert [l.budget for l in plan.layers] == [32429, 27024, 21619, 16214, 10809, 5405]


@pytest.mark.parametrize("spec", [bert_like(num_layers=12, num_parameters=40_000_000),
                                  t5_like(encoder_layers=6, decoder_layers=6, num_parameters=20_000_000)])
@pytest.mark.parametrize("fraction", [0.002, 0.005, 0.013, 0.05])
def test_increasing_allocation_gives_non_decreasing_layer_budgets(spec, fraction):
    plan = resolve(Design(allocation="increasing", strategies=("A",)).with_budget(fraction=fraction), spec)
    budgets = [l.budget for l in plan.layers]
    assert budgets == sorted(budgets) and budgets[0] < budgets[-1]
    assert sum(budgets) == plan.budget == round(fraction * spec.num_parameters)


def test_untuned_groups_get_no_layers():
    # uniform 4 groups on 6 layers: sizes 2 2 1 1 -> ranges (0,1) (2,3) (4,4) (5,5); tune groups 1 and 3
    plan = resolve(Design(tuned_groups=(3, 1)), BERT)
    assert plan.groups == ((0, 1), (2, 3), (4, 4), (5, 5))
    assert [(l.index, l.group) for l in plan.layers] == [(2, 1), (3, 1), (5, 3)]
    assert [l.budget for l in plan.layers] == [37834, 37833, 37833]  # the whole budget over three layers
    with pytest.raises(DesignError, match="layer 0 is not tuned by this plan"):
        plan.layer(0)
    assert plan.layer(5).group == 3


# -- resolve: notes and errors -----------------------------------------------------------------------

def test_bitfit_only_notes_why_it_is_off_budget():
    plan = resolve(Design(strategies=("B",)), BERT)
    assert plan.total == 6 * 4224 == 25_344
    assert all(l.sizes == {"B": 1} for l in plan.layers)
    assert plan.notes == ("planned 25,344 parameters is -77.7% off the budget of 113,500: "
                          "BitFit has a fixed size set by the backbone, not by the budget",)


def test_off_budget_without_bitfit_only_gives_the_other_reason():
    # the one-layer mixed design above: 30,731 planned against 30,000 (+2.4%)
    design = params_design(30_000, grouping=((0, 0), (1, 5)), tuned_groups=(0,), strategies=("APBL",))
    assert resolve(design, BERT).notes == (
        "planned 30,731 parameters is +2.4% off the budget of 30,000: integer sizes cannot reach it closer at this budget",)


def test_prefix_reparameterization_note():
    plan = resolve(Design(strategies=("P",), options=StrategyOptions(prefix_reparameterize=True)), BERT)
    # ~24.63 prefix positions a layer, diffused: 25 24 25 25 24 25
    assert [l.sizes["P"] for l in plan.layers] == [25, 24, 25, 25, 24, 25]
    assert plan.total == 148 * 768 == 113_664
    assert plan.training_total == 6 * 591_104 + 148 * 384 == 3_603_456
    assert plan.notes == ("prefix MLP reparameterization trains 3,603,456 parameters; merge() folds them to 113,664",)


def test_budget_too_small_names_every_layer_and_the_strategy():
    with pytest.raises(DesignError) as caught:
        resolve(params_design(100, strategies=("L",)), BERT)
    problems = caught.value.problems
    assert len(problems) == 6
    assert problems[0] == ("layer 0 (group 0): lora size rounds below 1 (0.01) with 17 parameters for this layer; "
                           "raise the budget or drop lora from group 0")
    assert [p.split(":")[0] for p in problems] == ["layer 0 (group 0)", "layer 1 (group 0)", "layer 2 (group 1)",
                                                   "layer 3 (group 1)", "layer 4 (group 2)", "layer 5 (group 3)"]


def test_only_the_infeasible_strategy_is_named():
    # 600 a layer: prefix 600/768 = .78 rounds to 1, adapter (600 - 384)/769 = .28 does not
    with pytest.raises(DesignError) as caught:
        resolve(params_design(3600, strategies=("P", "P", "A", "P")), BERT)
    assert caught.value.problems == [
        "layer 4 (group 2): adapter size rounds below 1 (0.28) with 600 parameters for this layer; "
        "raise the budget or drop adapter from group 2"]


def test_budget_not_covering_bitfit():
    with pytest.raises(DesignError) as caught:
        resolve(params_design(6 * 4000, strategies=("BL",)), BERT)
    problems = caught.value.problems
    assert problems[0] == ("layer 0 (group 0): its budget of 4000 parameters does not cover BitFit's 4224, "
                           "leaving nothing for lora; raise the budget or drop a strategy")
    assert problems[1].startswith("layer 0 (group 0): lora size rounds below 1")
    assert len(problems) == 12  # two per layer


def test_resolve_validates_the_design_first():
    with pytest.raises(DesignError, match="allocation='sideways' is unknown"):
        resolve(Design(allocation="sideways"), BERT)


def test_resolve_rejects_group_sizes_not_summing():
    with pytest.raises(DesignError) as caught:
        resolve(Design(grouping=(2, 2, 1)), BERT)
    assert caught.value.problems == ["group sizes [2, 2, 1] sum to 5, but the backbone has 6 layers"]


# -- Plan serialization ------------------------------------------------------------------------------

@pytest.mark.parametrize("design, spec", [
    (Design(), BERT),
    (Design(grouping="spindle", strategies=("AL", "AP", "APB", "PBL"), options=StrategyOptions(prefix_reparameterize=True)), T5),
    (Design(strategies=("B",)), BERT),
    (params_design(30_000, grouping=((0, 0), (1, 5)), tuned_groups=(0,), strategies=("APBL",)), BERT),
], ids=["lora", "s4-like", "bitfit", "explicit"])
def test_plan_round_trip(design, spec):
    plan = resolve(design, spec)
    data = plan.to_dict()
    assert data["total"] == plan.total
    assert Plan.from_dict(data) == plan
    assert Plan.from_dict(json.loads(json.dumps(data))) == plan


@pytest.mark.parametrize("data", [{}, {"design": {}}, "not a plan", {"design": {}, "family": "bert", "model_type": "bert",
                                   "backbone_parameters": "many", "budget": 1, "groups": [], "layers": []}])
def test_malformed_plan_is_a_design_error(data):
    with pytest.raises(DesignError, match="saved plan is malformed"):
        Plan.from_dict(data)


def test_a_strategy_the_backbone_cannot_take_is_refused_per_group_and_never_sampled():
    from dataclasses import replace

    from peftspace.design.space import DesignSpace, sample

    backbone = replace(bert_like(num_layers=4), unavailable=(("P", "no attention interface"),))
    with pytest.raises(DesignError) as error:
        resolve(Design(num_groups=2, strategies=("AP", "LP"), budget_fraction=0.01), backbone)
    assert error.value.problems == ["group 0: prefix (P) is not available on this bert backbone: no attention interface",
                                    "group 1: prefix (P) is not available on this bert backbone: no attention interface"]
    assert resolve(Design(num_groups=2, tuned_groups=(1,), strategies=("AP", "L"), budget_fraction=0.01), backbone).layers
    space = DesignSpace(name="all", num_groups=2, budget_fraction=0.01)
    designs = sample(space, 20, 0, backbone)
    assert len(designs) == 20
    assert all("P" not in design.group_strategies()[g] for design in designs for g in design.tuned())
    assert any("P" in "".join(design.group_strategies()) for design in sample(space, 20, 0, bert_like(num_layers=4)))
