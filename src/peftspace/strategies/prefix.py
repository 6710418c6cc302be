"""Prefix tuning (Li & Liang, 2021): learned key/value vectors prepended in attention modules.

Prefixes enter through transformers' attention interface: each prefixed attention module gets
its own copy of the config naming ``peftspace_prefix`` as its implementation, which prepends the
module's prefix to the (already projected and position-encoded) keys and values, widens the
attention mask and T5's position bias to match, and calls the implementation the model had.
This covers self- and cross-attention alike, in every family whose attention modules use the
interface, with no change to the model's code.
"""

from __future__ import annotations

import copy
import sys

import torch
from torch import nn

from peftspace.design.errors import ModelError
from peftspace.strategies._hooks import attach, attached

NAME = "peftspace_prefix"
IMPLEMENTATION = "peftspace_prefix"
SUPPORTED_BASES = ("eager", "sdpa")


class Prefix(nn.Module):
    def __init__(self, length: int, num_kv_heads: int, head_dim: int, hidden_size: int, base_implementation: str,
                 reparameterize: bool = False, mlp_hidden: int = 512, device=None, dtype=None):
        super().__init__()
        self.length, self.num_kv_heads, self.head_dim = length, num_kv_heads, head_dim
        self.base_implementation = base_implementation
        kv_dim = num_kv_heads * head_dim
        if reparameterize:
            self.embedding = nn.Parameter(torch.randn(length, hidden_size, device=device, dtype=dtype))
            self.mlp = nn.Sequential(nn.Linear(hidden_size, mlp_hidden, device=device, dtype=dtype), nn.Tanh(),
                                     nn.Linear(mlp_hidden, 2 * kv_dim, device=device, dtype=dtype))
        else:
            self.keys = nn.Parameter(torch.randn(num_kv_heads, length, head_dim, device=device, dtype=dtype))
            self.values = nn.Parameter(torch.randn(num_kv_heads, length, head_dim, device=device, dtype=dtype))

    @property
    def reparameterized(self) -> bool:
        return hasattr(self, "mlp")

    def key_values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values, each (kv_heads, length, head_dim)."""
        if not self.reparameterized:
            return self.keys, self.values
        kv = self.mlp(self.embedding).view(self.length, 2, self.num_kv_heads, self.head_dim)
        return kv[:, 0].transpose(0, 1), kv[:, 1].transpose(0, 1)

    @torch.no_grad()
    def fold(self) -> None:
        """Replace the MLP reparameterization by the plain prefixes it currently produces."""
        if not self.reparameterized:
            return
        keys, values = (t.detach().clone() for t in self.key_values())
        del self.mlp, self.embedding
        self.keys, self.values = nn.Parameter(keys), nn.Parameter(values)


def prefix_attention(module, query, key, value, attention_mask, **kwargs):
    """The attention interface of prefixed modules: widen keys, values, mask and bias; delegate."""
    prefix: Prefix = getattr(module, NAME)
    batch, p, key_length = key.shape[0], prefix.length, key.shape[2]
    prefix_keys, prefix_values = prefix.key_values()
    key = torch.cat([prefix_keys.to(key.dtype).expand(batch, -1, -1, -1), key], dim=2)
    value = torch.cat([prefix_values.to(value.dtype).expand(batch, -1, -1, -1), value], dim=2)

    query_length = query.shape[2]
    is_causal = kwargs.pop("is_causal", None)
    is_causal = getattr(module, "is_causal", False) if is_causal is None else is_causal
    if attention_mask is None and is_causal and query_length > 1:
        # the base implementation would have relied on is_causal, which cannot see the prefix
        visible = torch.ones(query_length, key_length, dtype=torch.bool, device=query.device).tril(key_length - query_length)
        attention_mask = torch.zeros(1, 1, query_length, key_length, dtype=query.dtype, device=query.device)
        attention_mask = attention_mask.masked_fill(~visible, torch.finfo(query.dtype).min)
    if attention_mask is not None:
        attention_mask = attention_mask[..., :key_length]
        fill = True if attention_mask.dtype == torch.bool else 0.0
        attention_mask = nn.functional.pad(attention_mask, (p, 0), value=fill)
    if kwargs.get("position_bias") is not None:  # T5: relative position bias over the real keys only
        kwargs["position_bias"] = nn.functional.pad(kwargs["position_bias"], (p, 0))
    return _base_attention(module, prefix.base_implementation)(module, query, key, value, attention_mask,
                                                               is_causal=False, **kwargs)


def _base_attention(module, implementation: str):
    if implementation == "eager":
        return sys.modules[type(module).__module__].eager_attention_forward
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS[implementation]


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(IMPLEMENTATION, prefix_attention)


def check(block) -> None:
    """Raise before anything changes if this block's attention cannot take prefixes."""
    for attention in block.attentions:
        if not attention.uses_attention_interface:
            continue
        base = attention.module.config._attn_implementation or "eager"
        if base not in SUPPORTED_BASES:
            raise ModelError(f"prefix tuning needs attn_implementation 'sdpa' or 'eager'; this model uses {base!r}. "
                             f"Load it with attn_implementation='sdpa'")


def apply(block, size: int, options) -> list[nn.Module]:
    check(block)
    _register()
    modules = []
    for attention in block.attentions:
        target = attention.module
        weight = attention.projections["k"].module.weight
        if not attention.uses_attention_interface:  # the family's own attention reads the prefix
            prefix = Prefix(size, attention.num_kv_heads, attention.head_dim, block.hidden_size, "own",
                            options.prefix_reparameterize, options.prefix_mlp_hidden, device=weight.device, dtype=weight.dtype)
            modules.append(attach(target, NAME, prefix))
            continue
        base = target.config._attn_implementation or "eager"
        prefix = Prefix(size, attention.num_kv_heads, attention.head_dim, block.hidden_size, base,
                        options.prefix_reparameterize, options.prefix_mlp_hidden, device=weight.device, dtype=weight.dtype)
        attach(target, NAME, prefix)
        target.config = copy.copy(target.config)
        target.config._attn_implementation_internal = IMPLEMENTATION  # not the setter: it recurses into shared sub-configs
        modules.append(prefix)
    return modules


def merge(model: nn.Module) -> int:
    found = attached(model, Prefix)
    for _, _, prefix in found:
        prefix.fold()
    return len(found)
