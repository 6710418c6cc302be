"""LoRA (Hu et al., 2022): a trainable low-rank update ``scale * B @ A`` on frozen projections.

Initialized as in HF peft (A Kaiming-uniform, B zero), so a fresh LoRA leaves outputs unchanged.
On a fused projection (GPT-2's ``c_attn``) the update covers only its role's output slice.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from peftspace.families import is_transposed, linear_shape
from peftspace.strategies._hooks import attach, fold_all, pad_to_slice

NAME = "peftspace_lora"


class LoRA(nn.Module):
    def __init__(self, in_features: int, out_features: int, rank: int, scale: float, dropout: float,
                 out_slice: slice | None, full_width: int, device=None, dtype=None):
        super().__init__()
        self.lora_A = nn.Linear(in_features, rank, bias=False, device=device, dtype=dtype)
        self.lora_B = nn.Linear(rank, out_features, bias=False, device=device, dtype=dtype)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.rank, self.scale = rank, scale
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.out_slice, self.full_width = out_slice, full_width

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x.to(self.lora_A.weight.dtype))
        return self.lora_B(self.lora_A(x)) * self.scale

    def hook(self, target, args, output):
        delta = pad_to_slice(self.delta(args[0]), self.out_slice, self.full_width)
        return output + delta.to(output.dtype)

    @torch.no_grad()
    def merge_into(self, target: nn.Module) -> None:
        update = pad_to_slice((self.lora_B.weight @ self.lora_A.weight).T * self.scale, self.out_slice, self.full_width).T
        if hasattr(target, "add_linear_update"):  # XLNet's einsum projections
            target.add_linear_update(update)
            return
        weight = target.weight
        weight.add_((update.T if is_transposed(target) else update).to(weight.dtype))


def apply(block, size: int, options) -> list[nn.Module]:
    modules = []
    for projection in block.projections():
        if projection.role not in options.lora_targets:
            continue
        target, weight = projection.module, projection.module.weight
        full_width = linear_shape(target)[1]
        lora = LoRA(projection.in_features, projection.out_features, size, options.lora_scale(size), options.lora_dropout,
                    projection.out_slice, full_width, device=weight.device, dtype=weight.dtype)
        name = NAME if projection.out_slice is None else f"{NAME}_{projection.role}"
        modules.append(attach(target, name, lora, hook=lora.hook))
    return modules


def merge(model: nn.Module) -> int:
    return fold_all(model, LoRA)
