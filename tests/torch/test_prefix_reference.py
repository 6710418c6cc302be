"""Prefixes against attention written out by hand: T5 (relative position bias, self and cross
attention) and Llama (rotary embeddings, grouped-query attention, causal mask)."""

from __future__ import annotations

import torch

import peftspace
from peftspace import Design
from tiny_models import build


def _attend(q, k, v, prefix, bias, scaling):
    """softmax(q [Pk; k]^T * scaling + [0; bias]) [Pv; v], heads broadcast for grouped queries."""
    keys, values = prefix.key_values()
    batch = q.shape[0]
    k = torch.cat([keys.expand(batch, -1, -1, -1), k], dim=2)
    v = torch.cat([values.expand(batch, -1, -1, -1), v], dim=2)
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    bias = torch.nn.functional.pad(bias, (prefix.length, 0))
    return ((q @ k.transpose(-1, -2)) * scaling + bias).softmax(-1) @ v


def _split(x, heads):
    return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def test_t5_prefix_in_encoder_self_attention_and_decoder_cross_attention():
    model = build("t5")
    peftspace.apply(model, Design(strategies=("P",), budget_fraction=0.1))
    generator = torch.Generator().manual_seed(0)
    hidden, memory = torch.randn(2, 5, 48, generator=generator), torch.randn(2, 7, 48, generator=generator)
    with torch.no_grad():
        attention = model.encoder.block[0].layer[0].SelfAttention  # holds the relative position bias
        got = attention(hidden)[0]
        q, k, v = (_split(proj(hidden), attention.n_heads) for proj in (attention.q, attention.k, attention.v))
        expected = _attend(q, k, v, attention.peftspace_prefix, attention.compute_bias(5, 5), 1.0)
        assert (got - attention.o(expected.transpose(1, 2).reshape(2, 5, -1))).abs().max() < 1e-5

        cross = model.decoder.block[1].layer[1].EncDecAttention
        got = cross(hidden, key_value_states=memory, position_bias=torch.zeros(1, cross.n_heads, 5, 7))[0]
        q = _split(cross.q(hidden), cross.n_heads)
        k, v = _split(cross.k(memory), cross.n_heads), _split(cross.v(memory), cross.n_heads)
        expected = _attend(q, k, v, cross.peftspace_prefix, torch.zeros(1, 1, 5, 7), 1.0)
        assert (got - cross.o(expected.transpose(1, 2).reshape(2, 5, -1))).abs().max() < 1e-5


def test_llama_prefix_with_rotary_embeddings_and_grouped_queries():
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    model = build("llama")
    peftspace.apply(model, Design(strategies=("P",), budget_fraction=0.1))
    attention = model.model.layers[0].self_attn
    assert attention.peftspace_prefix.keys.shape[0] == 2  # two key/value heads for four query heads
    hidden = torch.randn(2, 6, 48, generator=torch.Generator().manual_seed(0))
    positions = torch.arange(6)[None].expand(2, -1)
    with torch.no_grad():
        cos, sin = model.model.rotary_emb(hidden, positions)
        got = attention(hidden, position_embeddings=(cos, sin), attention_mask=None)[0]
        q = _split(attention.q_proj(hidden), 4)
        k, v = _split(attention.k_proj(hidden), 2), _split(attention.v_proj(hidden), 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)  # prefixes are keys after rotation: position-free
        causal = torch.full((6, 6), torch.finfo(torch.float32).min).triu(1)
        expected = _attend(q, k, v, attention.peftspace_prefix, causal, attention.scaling)
        assert (got - attention.o_proj(expected.transpose(1, 2).reshape(2, 6, -1))).abs().max() < 1e-5


def _band(length: int, window: int, causal: bool) -> torch.Tensor:
    """An additive mask: key j visible from query i when |i - j| < window (and j <= i if causal)."""
    i, j = torch.arange(length)[:, None], torch.arange(length)[None]
    visible = ((i - j).abs() < window) & ((j <= i) if causal else True)
    return torch.zeros(1, 1, length, length).masked_fill(~visible, torch.finfo(torch.float32).min)


def test_distilbert_prefix_in_self_attention():
    model = build("distilbert")
    peftspace.apply(model, Design(strategies=("P",), budget_fraction=0.1))
    attention = model.distilbert.transformer.layer[1].attention
    hidden = torch.randn(2, 6, 48, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 1, 6, 6)
    mask[1, ..., 4:] = torch.finfo(torch.float32).min  # the second row's last two tokens are padding
    with torch.no_grad():
        got = attention(hidden, attention_mask=mask)[0]
        q, k, v = (_split(proj(hidden), 4) for proj in (attention.q_lin, attention.k_lin, attention.v_lin))
        expected = _attend(q, k, v, attention.peftspace_prefix, mask, 12 ** -0.5)
        assert (got - attention.out_lin(expected.transpose(1, 2).reshape(2, 6, -1))).abs().max() < 1e-5


def test_modernbert_prefix_with_fused_qkv_rotary_and_sliding_windows():
    from transformers.models.modernbert.modeling_modernbert import apply_rotary_pos_emb

    model = build("modernbert")
    peftspace.apply(model, Design(strategies=("P",), budget_fraction=0.1))
    hidden = torch.randn(2, 7, 48, generator=torch.Generator().manual_seed(0))
    positions = torch.arange(7)[None].expand(2, -1)
    for layer, mask in ((0, torch.zeros(1, 1, 7, 7)), (1, _band(7, 3, causal=False))):  # global, then sliding (local_attention 4)
        attention = model.model.layers[layer].attn
        layer_type = model.config.layer_types[layer]
        with torch.no_grad():
            cos, sin = model.model.rotary_emb(hidden, positions, layer_type)
            got = attention(hidden, position_embeddings=(cos, sin), attention_mask=mask)[0]
            q, k, v = attention.Wqkv(hidden).view(2, 7, 3, 4, 12).unbind(2)
            q, k = apply_rotary_pos_emb(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
            expected = _attend(q, k, v.transpose(1, 2), attention.peftspace_prefix, mask, 12 ** -0.5)
            assert (got - attention.Wo(expected.transpose(1, 2).reshape(2, 7, -1))).abs().max() < 1e-5, layer_type


def _decoder_reference(model, layer: int, layer_type: str | None, window: int):
    """A decoder attention with q/k norms, rotary embeddings and grouped queries (Qwen3, Gemma3), against ``_attend``."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    attention = model.model.layers[layer].self_attn
    hidden = torch.randn(2, 6, 48, generator=torch.Generator().manual_seed(0))
    positions = torch.arange(6)[None].expand(2, -1)
    mask = _band(6, window, causal=True)
    with torch.no_grad():
        rotary = model.model.rotary_emb
        cos, sin = rotary(hidden, positions) if layer_type is None else rotary(hidden, positions, layer_type)
        got = attention(hidden, position_embeddings=(cos, sin), attention_mask=mask)[0]
        q = attention.q_norm(attention.q_proj(hidden).view(2, 6, 4, 16)).transpose(1, 2)
        k = attention.k_norm(attention.k_proj(hidden).view(2, 6, 2, 16)).transpose(1, 2)
        v = _split(attention.v_proj(hidden), 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        expected = _attend(q, k, v, attention.peftspace_prefix, mask, attention.scaling)
        return (got - attention.o_proj(expected.transpose(1, 2).reshape(2, 6, -1))).abs().max()


def test_qwen3_prefix_with_query_key_norms():
    model = build("qwen3")
    peftspace.apply(model, Design(strategies=("P",), budget_fraction=0.1))
    assert model.model.layers[0].self_attn.peftspace_prefix.keys.shape == (2, model.model.layers[0].self_attn.peftspace_prefix.length, 16)
    assert _decoder_reference(model, 0, None, window=6) < 1e-5


def test_gemma3_prefix_in_sliding_and_global_layers():
    model = build("gemma3")
    peftspace.apply(model, Design(strategies=("P",), budget_fraction=0.1))
    types = model.config.layer_types
    assert "sliding_attention" in types and "full_attention" in types
    for layer, layer_type in enumerate(types[:2]):
        window = 4 if layer_type == "sliding_attention" else 6
        assert model.model.layers[layer].self_attn.scaling == 16 ** -0.5
        assert _decoder_reference(model, layer, layer_type, window) < 1e-5, layer_type
