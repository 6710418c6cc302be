"""XLNet: einsum projections through shims, prefixes in its relative attention core, merging."""

from __future__ import annotations

import pytest
import torch

import peftspace
from peftspace import Design, StrategyOptions
from peftspace.strategies.prefix import Prefix
from peftspace.xlnet import _core
from tiny_models import build, inputs, output, perturb


def _captured_core_inputs(model, batch):
    """The arguments XLNet's first attention passes to its core, from a real forward."""
    attention = model.transformer.layer[0].rel_attn
    captured = {}
    original = attention.rel_attn_core

    def capture(*args, **kwargs):
        captured.update(args=args, kwargs=kwargs)
        return original(*args, **kwargs)

    attention.rel_attn_core = capture
    with torch.no_grad():
        output(model, batch)
    del attention.rel_attn_core
    return attention, captured["args"], captured["kwargs"]


def _with_prefix(attention, keys, values):
    prefix = Prefix(keys.shape[1], attention.n_head, attention.d_head, attention.d_model, "own")
    prefix.keys.data.copy_(keys)
    prefix.values.data.copy_(values)
    attention.peftspace_prefix = prefix
    return prefix


def test_prefix_mixes_into_the_softmax_like_extra_keys():
    """With zero prefix keys each prefix position scores exp(0) = 1 against the real scores'
    normalizer S, so attn = r * original + (1 - r) * mean(prefix values) with r = S / (p + S).
    Two prefix lengths must agree on S: an independent check of scale, masking and mixing."""
    model = build("xlnet")
    attention, args, kwargs = _captured_core_inputs(model, inputs("xlnet"))
    with torch.no_grad():
        original = attention.rel_attn_core(*args, **kwargs)
        n, d = attention.n_head, attention.d_head
        ratios = {}
        for p in (1, 3):
            _with_prefix(attention, torch.zeros(n, p, d), torch.zeros(n, p, d))
            mixed = _core(attention, *args[:4], kwargs.get("seg_mat"), kwargs.get("attn_mask"), False)
            ratio = mixed / original
            assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), atol=1e-4)  # one factor per query and head
            ratios[p] = ratio[..., 0]
            del attention.peftspace_prefix
        normalizer_1 = ratios[1] / (1 - ratios[1])
        normalizer_3 = 3 * ratios[3] / (1 - ratios[3])
        assert torch.allclose(normalizer_1, normalizer_3, rtol=1e-3)

        values = torch.randn(n, 3, d)
        _with_prefix(attention, torch.zeros(n, 3, d), values)
        mixed = _core(attention, *args[:4], kwargs.get("seg_mat"), kwargs.get("attn_mask"), False)
        r = ratios[3][..., None]
        expected = r * original + (1 - r) * values.mean(1)[None, None]
        assert torch.allclose(mixed, expected, atol=1e-5)


def test_xlnet_merge_save_and_load(tmp_path):
    batch = inputs("xlnet")
    model = build("xlnet")
    design = Design(strategies=("BL",), budget_fraction=0.1, options=StrategyOptions(lora_targets=("q", "k", "v", "o")))
    peftspace.apply(model, design)
    perturb(model)
    with torch.no_grad():
        expected = output(model, batch)
    peftspace.save(model, tmp_path)
    restored = peftspace.load(build("xlnet"), tmp_path)
    with torch.no_grad():
        assert torch.equal(output(restored, batch), expected)
        peftspace.merge(model)
        assert torch.allclose(output(model, batch), expected, atol=1e-5)
    assert not any("peftspace_lora" in n or "peftspace_bitfit" in n for n, _ in model.named_parameters())


def test_xlnet_two_stream_attention_still_runs():
    from transformers import XLNetConfig, XLNetLMHeadModel

    torch.manual_seed(0)
    model = XLNetLMHeadModel(XLNetConfig(vocab_size=120, d_model=48, n_layer=4, n_head=4, d_inner=96)).eval()
    ids = torch.randint(3, 120, (1, 6))
    perm_mask = torch.zeros(1, 6, 6)
    perm_mask[:, :, -1] = 1.0
    target_mapping = torch.zeros(1, 1, 6)
    target_mapping[0, 0, -1] = 1.0
    with torch.no_grad():
        before = model(ids, perm_mask=perm_mask, target_mapping=target_mapping).logits
        peftspace.apply(model, Design(strategies=("AL",), budget_fraction=0.2))
        after = model(ids, perm_mask=perm_mask, target_mapping=target_mapping).logits
    assert torch.allclose(before, after, atol=1e-6)
