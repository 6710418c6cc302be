"""Prefixes started from the backbone's own keys and values of real tokens (Schedule.prefix_init="tokens")."""

from __future__ import annotations

import copy

import pytest
import torch

import peftspace
from peftspace import Design
from peftspace.families import blocks
from peftspace.strategies.prefix import IMPLEMENTATION, Prefix, initialize_from_tokens
from peftspace.strategies._hooks import attached
from tiny_models import VOCAB, build


def _projections(model, token_ids):
    """Each attention module's key and value projections of ``token_ids``, by the module's position in the model."""
    found, handles = {}, []
    for b, block in enumerate(blocks(model)):
        for a, attention in enumerate(block.attentions):
            for role in ("k", "v"):
                projection = attention.projections[role]

                def keep(module, args, out, key=(b, a, role), part=projection.out_slice):
                    found[key] = (out if part is None else out[..., part])[0]
                handles.append(projection.module.register_forward_hook(keep))
    batch = {"input_ids": token_ids[None]}
    if model.config.is_encoder_decoder:
        batch["decoder_input_ids"] = token_ids[None]
    with torch.no_grad():
        model(**batch)
    for handle in handles:
        handle.remove()
    return found


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama", "t5"])
def test_prefixes_start_from_the_plain_backbones_keys_and_values(family):
    model = build(family)
    pristine = copy.deepcopy(model)
    peftspace.apply(model, Design(strategies=("P",), budget_fraction=0.02))
    model.train()
    token_ids = torch.randint(3, VOCAB, (40,), generator=torch.Generator().manual_seed(5))
    expected = _projections(pristine, token_ids)
    prefixes = {id(target): prefix for target, _, prefix in attached(model, Prefix)}
    assert initialize_from_tokens(model, token_ids) == len(prefixes) > 0
    assert model.training  # the mode it was in
    for b, block in enumerate(blocks(model)):
        for a, attention in enumerate(block.attentions):
            prefix = prefixes[id(attention.module)]
            for role, tensor in (("k", prefix.keys), ("v", prefix.values)):
                states = expected[(b, a, role)][:prefix.length]
                torch.testing.assert_close(tensor.detach(), states.view(prefix.length, prefix.num_kv_heads, -1).transpose(0, 1))
    for target in {id(t): t for t, _, _ in attached(model, Prefix)}.values():  # the prefixes are back in the attention
        assert target.config._attn_implementation == IMPLEMENTATION or prefixes[id(target)].base_implementation == "own"
