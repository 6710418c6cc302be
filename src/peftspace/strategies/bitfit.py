"""BitFit (Ben Zaken et al., 2022): train the bias terms of a layer.

Each bias is trained as a zero-initialized delta on the module's output, so the frozen bias stays
bit-identical and ``merge`` can fold the delta in. Where a projection has no bias (T5, Llama),
the delta *is* the added zero-initialized bias, and merging creates a real one.
"""

from __future__ import annotations

import torch
from torch import nn

from peftspace.strategies._hooks import attach, fold_all

NAME = "peftspace_bitfit"


class BiasDelta(nn.Module):
    def __init__(self, size: int, added: bool, device=None, dtype=None):
        super().__init__()
        self.delta = nn.Parameter(torch.zeros(size, device=device, dtype=dtype))
        self.added = added  # True where the backbone had no bias here

    def hook(self, target, args, output):
        return output + self.delta.to(output.dtype)

    @torch.no_grad()
    def merge_into(self, target: nn.Module) -> None:
        if target.bias is None:
            target.bias = nn.Parameter(self.delta.detach().clone(), requires_grad=False)
        else:
            target.bias.add_(self.delta.to(target.bias.dtype))


def apply(block, size: int, options) -> list[nn.Module]:
    modules = []
    for target in block.bias_modules():
        weight = target.weight
        out = target.bias.numel() if target.bias is not None else _out_features(target)
        delta = BiasDelta(out, added=target.bias is None, device=weight.device, dtype=weight.dtype)
        modules.append(attach(target, NAME, delta, hook=delta.hook))
    return modules


def merge(model: nn.Module) -> int:
    return fold_all(model, BiasDelta)


def _out_features(target: nn.Module) -> int:
    from peftspace.families import linear_shape

    return linear_shape(target)[1]
