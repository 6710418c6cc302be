"""Every strategy on every family: exact trainable sets, analytic counts, and no-op at init."""

from __future__ import annotations

import pytest
import torch

import peftspace
from peftspace import Design, StrategyOptions
from peftspace.design.errors import DesignError
from peftspace.families import family_map
from tiny_models import BUILDERS, build, inputs, output, perturb

STRATEGY_PARAMETER_NAMES = {"A": "peftspace_adapter", "P": "peftspace_prefix", "B": "peftspace_bitfit", "L": "peftspace_lora"}

DESIGNS = {
    "adapter": Design(strategies=("A",), budget_fraction=0.1),
    "adapter-houlsby": Design(strategies=("A",), budget_fraction=0.1, options=StrategyOptions(adapter_placement="houlsby", adapter_nonlinearity="gelu")),
    "adapter-parallel": Design(strategies=("A",), budget_fraction=0.1, options=StrategyOptions(adapter_placement="parallel", adapter_scaling=4.0)),
    "prefix": Design(strategies=("P",), budget_fraction=0.1),
    "prefix-mlp": Design(strategies=("P",), budget_fraction=0.1, options=StrategyOptions(prefix_reparameterize=True, prefix_mlp_hidden=16)),
    "bitfit": Design(strategies=("B",), budget_fraction=0.1),
    "lora": Design(strategies=("L",), budget_fraction=0.1),
    "lora-all-targets": Design(strategies=("L",), budget_fraction=0.1, options=StrategyOptions(lora_targets=("q", "k", "v", "o", "ffn_in", "ffn_out"))),
    "mixed": Design(grouping="uniform", num_groups=2, allocation="increasing", strategies=("ABL", "APBL"), budget_fraction=0.2),
    "mixed-partial": Design(grouping="increasing", num_groups=3, allocation="decreasing", tuned_groups=(0, 2), strategies=("AL", "B", "PL"), budget_fraction=0.1),
}


def _uses_prefix(design: Design) -> bool:
    return "P" in "".join(design.strategies)


def _takes_prefix(model) -> bool:
    return family_map(model.config).can("prefix")


def _mixed(model) -> Design:
    """The mixed design, without prefixes on a family that cannot take them."""
    return DESIGNS["mixed"] if _takes_prefix(model) else Design(grouping="uniform", num_groups=2, allocation="increasing",
                                                               strategies=("ABL", "BL"), budget_fraction=0.2)


def _strategy_counts(model) -> dict[str, int]:
    counts = {}
    for letter, marker in STRATEGY_PARAMETER_NAMES.items():
        n = sum(p.numel() for name, p in model.named_parameters() if marker in name)
        if n:
            counts[letter] = n
    return counts


@pytest.mark.parametrize("design_name", sorted(DESIGNS))
@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_trainable_set_and_counts_match_the_plan(family, design_name):
    model = build(family)
    if _uses_prefix(DESIGNS[design_name]) and not _takes_prefix(model):
        with pytest.raises(DesignError, match=f"prefix .P. is not available on this {model.config.model_type} backbone"):
            peftspace.apply(model, DESIGNS[design_name])
        assert all(p.requires_grad for p in model.parameters())  # refused before anything changed
        assert not any("peftspace_" in name for name, _ in model.named_modules())
        return
    plan = peftspace.apply(model, DESIGNS[design_name])

    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    declared = {name for name, _ in model.named_parameters() if "peftspace_" in name}
    assert trainable == declared and trainable

    real = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert real == plan.training_total
    expected = {}
    for layer in plan.layers:
        for letter, n in layer.training_counts.items():
            expected[letter] = expected.get(letter, 0) + n
    assert _strategy_counts(model) == expected

    tuned = {layer.index for layer in plan.layers}
    untouched = [i for i in range(len(peftspace.families.blocks(model))) if i not in tuned]
    for index in untouched:
        block = peftspace.families.blocks(model)[index].module
        assert not any("peftspace_" in name for name, _ in block.named_parameters())


@pytest.mark.parametrize("design_name", [n for n, d in sorted(DESIGNS.items()) if "P" not in "".join(d.strategies)])
@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_fresh_design_leaves_outputs_unchanged(family, design_name):
    model, batch = build(family), inputs(family)
    with torch.no_grad():
        frozen = output(model, batch)
        peftspace.apply(model, DESIGNS[design_name])
        assert torch.allclose(output(model, batch), frozen, atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_trained_deltas_change_outputs_and_get_gradients(family):
    model, batch = build(family), inputs(family)
    with torch.no_grad():
        frozen = output(model, batch)
    peftspace.apply(model, _mixed(model))
    perturb(model)
    out = output(model, batch)
    assert not torch.allclose(out, frozen, atol=1e-4)
    out.float().pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert missing == []
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_bitfit_adds_biases_where_the_family_has_none():
    t5 = build("t5")
    plan = peftspace.apply(t5, DESIGNS["bitfit"])
    from peftspace.strategies.bitfit import BiasDelta

    deltas = [m for m in t5.modules() if isinstance(m, BiasDelta)]
    assert deltas and all(d.added for d in deltas)  # T5 has no biases at all
    bert = build("bert")
    peftspace.apply(bert, DESIGNS["bitfit"])
    assert not any(m.added for m in bert.modules() if isinstance(m, BiasDelta))
    assert any("zero-initialized" in n or "has none" in n for n in plan.notes), plan.notes


def test_prefix_is_causal_in_decoders_and_visible_to_every_position():
    for family in [f for f in sorted(BUILDERS) if family_map(build(f).config).kind == "decoder"]:
        model, batch = build(family), inputs(family)
        batch = {"input_ids": batch["input_ids"][:1]}
        with torch.no_grad():
            frozen = output(model, batch)
            peftspace.apply(model, DESIGNS["prefix"])
            before = output(model, batch)
            changed = dict(batch, input_ids=batch["input_ids"].clone())
            changed["input_ids"][0, 5:] = (changed["input_ids"][0, 5:] + 1) % 100 + 3
            after = output(model, changed)
        assert torch.allclose(before[0, :5], after[0, :5], atol=1e-6)  # the future stays invisible
        assert (before[0] - frozen[0]).abs().amax(-1).min() > 1e-4  # every position sees the prefix


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_plan_from_the_config_counts_what_the_model_trains(family):
    """Sweeps plan from a config (a meta-device backbone without task heads); the trained model must agree."""
    model = build(family)
    design = _mixed(model)
    from_config = peftspace.plan(model.config, design)
    applied = peftspace.apply(model, from_config)  # refused if the backbone sizes differ
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == from_config.training_total
    assert applied.backbone_parameters == from_config.backbone_parameters


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_save_load_and_merge(family, tmp_path):
    model, batch = build(family), inputs(family)
    peftspace.apply(model, _mixed(model))
    perturb(model)
    with torch.no_grad():
        expected = output(model, batch)
    peftspace.save(model, tmp_path)
    restored = peftspace.load(build(family), tmp_path)
    with torch.no_grad():
        assert torch.equal(output(restored, batch), expected)
        peftspace.merge(model)
        torch.testing.assert_close(output(model, batch), expected, rtol=1e-4, atol=1e-4)
    assert not any("peftspace_lora" in n or "peftspace_bitfit" in n for n, _ in model.named_parameters())


@pytest.mark.parametrize("family", ["t5-untied", "mt5"])
def test_an_untied_lm_head_is_not_part_of_the_budget(family):
    model = build(family)
    assert model.lm_head.weight is not model.shared.weight
    without_head = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("lm_head."))
    design = Design(strategies=("AL",), budget_fraction=0.05)
    planned, from_config = peftspace.plan(model, design), peftspace.plan(model.config, design)
    assert planned.backbone_parameters == from_config.backbone_parameters == without_head
    assert planned.budget == from_config.budget == round(0.05 * without_head)
    peftspace.apply(model, from_config)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == from_config.total
