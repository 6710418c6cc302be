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
