"""FastDropout must be dropout: independent Bernoulli(1 - p) masks, inverted scaling, identity in eval."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from peftspace.dropout import STEPS, FastDropout, keep_mask, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_each_entry_is_kept_with_probability_one_minus_p(p):
    count = 1 << 22
    kept = keep_mask((count,), p, generator=torch.Generator().manual_seed(0))
    rate = 1 - round(p * STEPS) / STEPS
    sigma = math.sqrt(rate * (1 - rate) / count)
    assert abs(kept.double().mean().item() - rate) < 5 * sigma


def test_the_four_entries_cut_from_one_draw_are_independent():
    p, count = 0.3, 1 << 22
    lanes = keep_mask((count // 4, 4), p, generator=torch.Generator().manual_seed(1)).double()
    dropped = 1 - lanes
    sigma = math.sqrt(p * p * (1 - p * p) / (count // 4))
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 3)]:  # entries of the same 64-bit word
        assert abs((dropped[:, a] * dropped[:, b]).mean().item() - p * p) < 5 * sigma
    for lane in range(4):
        assert abs(dropped[:, lane].mean().item() - p) < 5 * math.sqrt(p * (1 - p) / (count // 4))


@pytest.mark.parametrize("shape", [(7,), (3, 5, 7), (2, 4, 8)])
def test_kept_entries_are_scaled_dropped_are_zero_and_gradients_follow_the_mask(shape):
    torch.manual_seed(0)
    x = (torch.rand(shape) + 1).requires_grad_(True)
    dropout = FastDropout(0.25).train()
    y = dropout(x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.75)
    y.sum().backward()
    assert torch.equal(x.grad, kept.float() / 0.75)


def test_eval_mode_and_p_zero_are_the_identity_and_p_one_drops_everything():
    x = torch.randn(4, 9)
    assert FastDropout(0.5).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x
    assert torch.equal(FastDropout(1.0).train()(x), torch.zeros_like(x))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FastDropout(1.5)


def test_the_same_seed_gives_the_same_mask_and_bf16_inputs_stay_bf16():
    x = torch.ones(64, 33, dtype=torch.bfloat16)
    torch.manual_seed(3)
    first = FastDropout(0.1).train()(x)
    torch.manual_seed(3)
    assert torch.equal(first, FastDropout(0.1).train()(x)) and first.dtype == torch.bfloat16


def test_every_plain_dropout_of_a_real_model_is_swapped_keeping_p(minilm_path):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    before = {name: m.p for name, m in model.named_modules() if type(m) is nn.Dropout}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert use_fast_dropout(model) == len(before) > 10
    after = {name: m.p for name, m in model.named_modules() if isinstance(m, FastDropout)}
    assert after == before and not any(type(m) is nn.Dropout for m in model.modules())
    assert model.state_dict().keys() == state.keys()
    batch = {"input_ids": torch.tensor([[101, 2023, 2003, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    model.eval()
    with torch.no_grad():
        swapped = model(**batch).logits
    model.load_state_dict(state)
    fresh = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2).eval()
    fresh.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(swapped, fresh(**batch).logits)  # eval mode: nothing else changed
