"""XLNet: its attention keeps q/k/v/o as raw ``(d_model, heads, head_dim)`` tensors used through
einsum and runs relative-position attention outside transformers' attention interface.

To let the generic strategies work on it, each tuned attention module gets hookable projection
shims (``EinsumProjection``; the weights stay where XLNet keeps them, so checkpoints are
unchanged) and a forward that calls them; prefixes are prepended in its attention core as
position-free keys scored with the content bias. The forward reproduces the original's arithmetic
exactly (same einsums), so a fresh design leaves outputs unchanged.
"""

from __future__ import annotations

import types

import torch
from torch import nn

SHIM_PREFIX = "peftspace_proj_"


class EinsumProjection(nn.Module):
    """XLNet's q, k, v (h -> heads*head_dim) or o (heads*head_dim -> h) as a linear-like module."""

    def __init__(self, owner: nn.Module, name: str):
        super().__init__()
        object.__setattr__(self, "_owner", owner)  # not a submodule: the weight belongs to XLNet
        self.param_name = name
        self.bias = None  # BitFit's merge may create one

    @property
    def weight(self) -> torch.Tensor:
        return getattr(self._owner, self.param_name)

    @property
    def in_features(self) -> int:
        h, n, d = self.weight.shape
        return n * d if self.param_name == "o" else h

    @property
    def out_features(self) -> int:
        h, n, d = self.weight.shape
        return h if self.param_name == "o" else n * d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if self.param_name == "o":
            out = torch.einsum("ibnd,hnd->ibh", x.reshape(*x.shape[:-1], *weight.shape[1:]), weight)
        else:
            out = torch.einsum("ibh,hnd->ibnd", x, weight).flatten(-2)
        return out if self.bias is None else out + self.bias

    @torch.no_grad()
    def add_linear_update(self, update: torch.Tensor) -> None:
        """Add ``update``, laid out as an ``nn.Linear`` weight (out, in), to XLNet's tensor."""
        weight = self.weight
        laid_out = update if self.param_name == "o" else update.T
        weight.add_(laid_out.reshape(weight.shape).to(weight.dtype))


def shims(attention: nn.Module, attach: bool) -> dict[str, EinsumProjection]:
    """The q/k/v/o shims of ``attention``, attached (and its forward replaced) when asked."""
    found = {}
    for name in ("q", "k", "v", "o"):
        shim = getattr(attention, SHIM_PREFIX + name, None)
        if shim is None:
            shim = EinsumProjection(attention, name)
            if attach:
                attention.add_module(SHIM_PREFIX + name, shim)
        found[name] = shim
    if attach and not isinstance(attention.__dict__.get("forward"), types.MethodType):
        attention.forward = types.MethodType(attention_forward, attention)
    return found


def _heads(self, x: torch.Tensor) -> torch.Tensor:
    return x.view(*x.shape[:-1], self.n_head, self.d_head)


def attention_forward(self, h, g, attn_mask_h, attn_mask_g, r, seg_mat, mems=None, target_mapping=None, output_attentions=False):
    """XLNetRelativeAttention.forward with projections through the shims (same arithmetic)."""
    q_proj, k_proj, v_proj = (getattr(self, SHIM_PREFIX + n) for n in ("q", "k", "v"))
    cat = torch.cat([mems, h], dim=0) if mems is not None and mems.dim() > 1 else h
    k_head_h, v_head_h = _heads(self, k_proj(cat)), _heads(self, v_proj(cat))
    k_head_r = torch.einsum("ibh,hnd->ibnd", r.type(self.r.dtype), self.r)

    def stream(x, attn_mask, mapping=None):
        q_head = _heads(self, q_proj(x))
        if mapping is not None:
            q_head = torch.einsum("mbnd,mlb->lbnd", q_head, mapping)
        result = _core(self, q_head, k_head_h, v_head_h, k_head_r, seg_mat, attn_mask, output_attentions)
        attn_vec, prob = result if output_attentions else (result, None)
        if mapping is not None:
            attn_vec = torch.einsum("lbnd,mlb->mbnd", attn_vec, mapping)
        return _post_attention(self, x, attn_vec), prob

    output_h, prob_h = stream(h, attn_mask_h)
    output_g, prob_g = stream(g, attn_mask_g, target_mapping) if g is not None else (None, None)
    outputs = (output_h, output_g)
    if output_attentions:
        outputs = outputs + ((prob_h, prob_g) if g is not None else (prob_h,))
    return outputs


def _post_attention(self, x, attn_vec):
    o_proj = getattr(self, SHIM_PREFIX + "o")
    attn_out = self.dropout(o_proj(attn_vec.flatten(-2)))
    return self.layer_norm(attn_out + x)


def _core(self, q_head, k_head_h, v_head_h, k_head_r, seg_mat, attn_mask, output_attentions):
    prefix = getattr(self, "peftspace_prefix", None)
    if prefix is None:
        return self.rel_attn_core(q_head, k_head_h, v_head_h, k_head_r, seg_mat=seg_mat, attn_mask=attn_mask,
                                  output_attentions=output_attentions)
    ac = torch.einsum("ibnd,jbnd->bnij", q_head + self.r_w_bias, k_head_h)
    bd = self.rel_shift_bnij(torch.einsum("ibnd,jbnd->bnij", q_head + self.r_r_bias, k_head_r), klen=ac.shape[3])
    ef = 0
    if seg_mat is not None:
        ef = torch.einsum("ijbs,ibns->bnij", seg_mat, torch.einsum("ibnd,snd->ibns", q_head + self.r_s_bias, self.seg_embed))
    score = (ac + bd + ef) * self.scale
    if attn_mask is not None:
        score = score - (65500 if attn_mask.dtype == torch.float16 else 1e30) * torch.einsum("ijbn->bnij", attn_mask)
    keys, values = prefix.key_values()  # (heads, p, head_dim): position- and segment-free keys
    prefix_score = torch.einsum("ibnd,npd->bnip", q_head + self.r_w_bias, keys.to(q_head.dtype)) * self.scale
    prob = self.dropout(nn.functional.softmax(torch.cat([prefix_score, score], dim=3), dim=3))
    p = prefix.length
    attn_vec = (torch.einsum("bnip,npd->ibnd", prob[..., :p], values.to(v_head_h.dtype))
                + torch.einsum("bnij,jbnd->ibnd", prob[..., p:], v_head_h))
    return (attn_vec, torch.einsum("bnij->ijbn", prob)) if output_attentions else attn_vec
