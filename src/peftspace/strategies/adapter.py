"""Bottleneck adapters: down-projection, nonlinearity, up-projection, added back to the stream.

Placements: "pfeiffer" adds one adapter to the FFN's output (before the block's residual and
norm); "houlsby" adds another to the self-attention's output; "parallel" (He et al., 2022)
feeds the FFN's *input* through the adapter and adds the result to the FFN's output. The
up-projection starts at zero, so a fresh adapter leaves outputs unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from peftspace.strategies._hooks import attach

NAME = "peftspace_adapter"
NONLINEARITIES = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class Adapter(nn.Module):
    def __init__(self, hidden_size: int, bottleneck: int, nonlinearity: str, scaling: float, device=None, dtype=None):
        super().__init__()
        self.down = nn.Linear(hidden_size, bottleneck, device=device, dtype=dtype)
        self.act = NONLINEARITIES[nonlinearity]()
        self.up = nn.Linear(bottleneck, hidden_size, device=device, dtype=dtype)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.scaling = scaling
        self._ffn_input = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x.to(self.down.weight.dtype)))) * self.scaling

    def sequential_hook(self, target, args, output):
        return output + self(output).to(output.dtype)

    def remember_input(self, target, args, kwargs):
        self._ffn_input = args[0] if args else kwargs["hidden_states"]

    def parallel_hook(self, target, args, output):
        x, self._ffn_input = self._ffn_input, None
        return output + self(x).to(output.dtype)


def apply(block, size: int, options) -> list[nn.Module]:
    ffn_out = block.ffn[-1].module

    def new_adapter():
        weight = ffn_out.weight
        return Adapter(block.hidden_size, size, options.adapter_nonlinearity, options.adapter_scaling,
                       device=weight.device, dtype=weight.dtype)

    if options.adapter_placement == "parallel":
        adapter = new_adapter()
        attach(ffn_out, NAME, adapter, hook=adapter.parallel_hook)
        block.ffn_module.register_forward_pre_hook(adapter.remember_input, with_kwargs=True)
        return [adapter]
    modules = []
    if options.adapter_placement == "houlsby":
        attention_out = block.attentions[0].projections["o"].module
        adapter = new_adapter()
        modules.append(attach(attention_out, NAME, adapter, hook=adapter.sequential_hook))
    adapter = new_adapter()
    modules.append(attach(ffn_out, NAME, adapter, hook=adapter.sequential_hook))
    return modules
