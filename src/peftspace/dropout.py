"""Dropout with cheaper masks: a trial's ``nn.Dropout`` modules draw four mask entries per random number.

On CPU, ``torch.nn.functional.dropout`` draws one random number per element from a serial
generator, and a frozen backbone's dropouts cost a fifth of a bf16 training step on MiniLM. Here
each 64-bit draw of the same generator is cut into four 16-bit uniforms, each compared with a
threshold: an element is kept with probability ``1 - p`` (``p`` rounded to a multiple of 1/65536,
e.g. 0.1 -> 0.1000061) and scaled by ``1 / (1 - p)``, as in ``nn.Dropout``. Masks are independent
Bernoulli draws all the same; only the stream they come from differs from torch's own dropout.

Attention-probability dropout happens inside ``scaled_dot_product_attention``, where torch draws
it with the same serial generator (and leaves its fused kernel for the math path to do so). In
BERT-like encoders, whose self-attention goes through transformers' attention interface with
``sdpa``, each attention module gets its own config naming ``fast_dropout_attention`` (as prefix
tuning does): while training with dropout it computes the same softmax(QK^T * scale + mask) V with
its mask from ``keep_mask``; otherwise it is ``sdpa`` itself. Which families qualify is declared on
the family map (the ``fast_attention_dropout`` capability); the others keep torch's.
"""

from __future__ import annotations

import torch
from torch import nn

STEPS = 1 << 16  # 16-bit uniforms
ATTENTION = "peftspace_fast_dropout"
CAPABILITY = "fast_attention_dropout"  # declared by families in peftspace.families


class FastDropout(nn.Module):
    """``nn.Dropout(p)`` with masks from ``keep_mask``; identity in eval mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        keep = keep_mask(x.shape, self.p, x.device)
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def keep_mask(shape: torch.Size, p: float, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """A boolean tensor of ``shape``, each entry True with probability ``1 - round(p * 65536) / 65536``."""
    count = 1
    for size in shape:
        count *= size
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), None, generator=generator)
    uniforms = words.view(torch.int16)[:count].view(shape)  # each int16 uniform on [-32768, 32767]
    return uniforms >= round(p * STEPS) - STEPS // 2


def fast_dropout_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """``sdpa`` attention whose attention-probability dropout draws its mask with ``keep_mask``."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if not (module.training and dropout > 0.0):
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    scores = torch.matmul(query, key.transpose(2, 3)) * (query.size(-1) ** -0.5 if scaling is None else scaling)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask[..., : key.shape[-2]]
    probabilities = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    kept = keep_mask(probabilities.shape, dropout, probabilities.device).to(probabilities.dtype).mul_(1.0 / (1.0 - dropout))
    return torch.matmul(probabilities * kept, value).transpose(1, 2).contiguous(), None


def use_fast_dropout(model: nn.Module) -> int:
    """Swap every plain ``nn.Dropout`` of ``model`` for a ``FastDropout`` of the same ``p``, and the ``sdpa``
    attention of families declaring ``fast_attention_dropout`` for ``fast_dropout_attention``; returns how many modules changed.

    Meant for a trial's own model copy: nothing here holds state, so nothing saved changes.
    """
    import copy

    from peftspace.families import blocks, family_map
    from peftspace.strategies.prefix import NAME as PREFIX

    swapped = 0
    for module in model.modules():
        for name, child in list(module.named_children()):
            if type(child) is nn.Dropout:
                replacement = FastDropout(child.p)
                replacement.train(child.training)
                setattr(module, name, replacement)
                swapped += 1
    if not family_map(model.config).can(CAPABILITY):
        return swapped
    _register()
    for block in blocks(model):
        for attention in block.attentions:
            target, prefix = attention.module, getattr(attention.module, PREFIX, None)
            if prefix is not None and prefix.base_implementation == "sdpa":
                prefix.base_implementation = ATTENTION  # the prefix widens keys and mask, then calls this
                swapped += 1
            elif prefix is None and attention.uses_attention_interface and target.config._attn_implementation == "sdpa":
                target.config = copy.copy(target.config)
                target.config._attn_implementation_internal = ATTENTION  # not the setter: it recurses into sub-configs
                swapped += 1
    return swapped


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, fast_dropout_attention)
