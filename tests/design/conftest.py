"""Hand-made backbone specs for the design-layer tests (no model, no torch).

``bert_like``: post-LN encoder blocks with biases everywhere (all-MiniLM-L6-v2's shapes by default).
``t5_like``: encoder then decoder blocks without any bias; decoder blocks also have cross-attention,
and the attention's inner width (heads x d_kv) differs from the model width on purpose, so that a
count mixing up ``hidden_size`` and ``kv_dim`` is caught.
"""

from __future__ import annotations

import pytest

from peftspace.design.backbone import AttentionSpec, BackboneSpec, LayerSpec, LinearSpec


def attention(kind: str, hidden: int, kv_dim: int, bias: bool) -> AttentionSpec:
    return AttentionSpec(kind=kind, kv_dim=kv_dim, projections=(
        LinearSpec("q", hidden, kv_dim, bias),
        LinearSpec("k", hidden, kv_dim, bias),
        LinearSpec("v", hidden, kv_dim, bias),
        LinearSpec("o", kv_dim, hidden, bias),
    ))


def ffn(hidden: int, inner: int, bias: bool) -> tuple[LinearSpec, ...]:
    return (LinearSpec("ffn_in", hidden, inner, bias), LinearSpec("ffn_out", inner, hidden, bias))


def bert_like(num_layers: int = 6, hidden: int = 384, inner: int = 1536, num_parameters: int = 22_700_000) -> BackboneSpec:
    layers = tuple(
        LayerSpec(index=i, stack="encoder", hidden_size=hidden,
                  attentions=(attention("self", hidden, hidden, True),), ffn=ffn(hidden, inner, True),
                  norm_bias_sizes=(hidden, hidden))
        for i in range(num_layers)
    )
    return BackboneSpec(family="bert", model_type="bert", num_parameters=num_parameters, layers=layers)


def t5_like(encoder_layers: int = 3, decoder_layers: int = 3, hidden: int = 64, kv_dim: int = 32, inner: int = 256,
            num_parameters: int = 10_000_000) -> BackboneSpec:
    layers = []
    for i in range(encoder_layers + decoder_layers):
        decoder = i >= encoder_layers
        attentions = (attention("self", hidden, kv_dim, False),)
        if decoder:
            attentions += (attention("cross", hidden, kv_dim, False),)
        layers.append(LayerSpec(index=i, stack="decoder" if decoder else "encoder", hidden_size=hidden,
                                attentions=attentions, ffn=ffn(hidden, inner, False)))
    return BackboneSpec(family="t5", model_type="t5", num_parameters=num_parameters, layers=tuple(layers))


@pytest.fixture
def bert() -> BackboneSpec:
    return bert_like()


@pytest.fixture
def t5() -> BackboneSpec:
    return t5_like()
