"""Random designs on real (tiny) models: our error type or an exact, correctly counted design."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import peftspace
from peftspace.design import PATTERN_NAMES, Design, DesignError, ModelError, StrategyOptions
from tiny_models import build

SUBSETS = ["".join(s for s, keep in zip("APBL", mask) if keep) for mask in
           [(a, p, b, l) for a in (0, 1) for p in (0, 1) for b in (0, 1) for l in (0, 1)] if any(mask)]


@st.composite
def designs(draw):
    groups = draw(st.integers(1, 4))
    return Design(
        grouping=draw(st.sampled_from(PATTERN_NAMES)), num_groups=groups,
        allocation=draw(st.sampled_from(["uniform", "increasing", "decreasing"])),
        tuned_groups=tuple(draw(st.sets(st.integers(0, groups - 1), min_size=1))),
        strategies=tuple(draw(st.lists(st.sampled_from(SUBSETS), min_size=groups, max_size=groups))),
        budget_fraction=draw(st.floats(0.001, 0.3)),
        options=StrategyOptions(
            adapter_placement=draw(st.sampled_from(["pfeiffer", "houlsby", "parallel"])),
            prefix_reparameterize=draw(st.booleans()), prefix_mlp_hidden=8,
            lora_targets=tuple(draw(st.sets(st.sampled_from(["q", "k", "v", "o", "ffn_in", "ffn_out"]), min_size=1)))),
    )


@pytest.mark.parametrize("family", ["bert", "t5", "gpt2"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(design=designs())
def test_random_designs_apply_exactly_or_raise_our_error(family, design):
    model = build(family)
    try:
        plan = peftspace.apply(model, design)
    except (DesignError, ModelError):
        assert not any(p.requires_grad is False for p in model.parameters())  # the model was left alone
        return
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == plan.training_total
    assert all("peftspace_" in n for n, p in model.named_parameters() if p.requires_grad)


def test_unknown_model_family_gets_a_clear_error():
    from transformers import ViTConfig

    with pytest.raises(ModelError, match="model type 'vit' is not supported"):
        peftspace.plan(ViTConfig(), "lora")


def test_prefix_refuses_attention_kernels_it_cannot_extend():
    model = build("bert")
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ModelError, match="sdpa"):
        peftspace.apply(model, Design(strategies=("P",), budget_fraction=0.1))
    assert all(p.requires_grad for p in model.parameters())  # failed before changing anything
    assert not any("peftspace_" in name for name, _ in model.named_modules())
