"""Analytic trainable-parameter counts of each strategy in one layer, from shapes alone.

Each strategy's count is ``fixed + size * per_unit`` (BitFit has no size: ``per_unit`` is 0).
The torch modules in ``peftspace.strategies`` must create exactly these counts; a table-driven
test ties the two together.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftspace.design.backbone import LayerSpec
from peftspace.design.options import StrategyOptions

STRATEGIES = ("A", "P", "B", "L")  # Adapter, Prefix, BitFit, LoRA
STRATEGY_NAMES = {"A": "adapter", "P": "prefix", "B": "bitfit", "L": "lora"}
SIZEABLE = ("A", "P", "L")


@dataclass(frozen=True)
class Cost:
    fixed: int
    per_unit: int

    def at(self, size: int) -> int:
        return self.fixed + size * self.per_unit


def adapter_sites(layer: LayerSpec, options: StrategyOptions) -> int:
    return 2 if options.adapter_placement == "houlsby" else 1


def adapter_cost(layer: LayerSpec, options: StrategyOptions) -> Cost:
    # down (d*r + r) and up (r*d + d) per site
    d, sites = layer.hidden_size, adapter_sites(layer, options)
    return Cost(fixed=sites * d, per_unit=sites * (2 * d + 1))


def prefix_cost(layer: LayerSpec, options: StrategyOptions) -> Cost:
    """Folded size: one key and one value vector per prefix position in every attention module."""
    return Cost(fixed=0, per_unit=sum(2 * a.kv_dim for a in layer.attentions))


def prefix_training_cost(layer: LayerSpec, options: StrategyOptions) -> Cost:
    """What trains while the MLP reparameterization is on (embedding + two-layer MLP per module)."""
    if not options.prefix_reparameterize:
        return prefix_cost(layer, options)
    d, m = layer.hidden_size, options.prefix_mlp_hidden
    fixed = sum(d * m + m + m * 2 * a.kv_dim + 2 * a.kv_dim for a in layer.attentions)
    return Cost(fixed=fixed, per_unit=d * len(layer.attentions))


def bitfit_cost(layer: LayerSpec, options: StrategyOptions) -> Cost:
    """Every projection's bias (existing or added at zero) plus the norms' biases."""
    return Cost(fixed=sum(p.out_features for p in layer.linears()) + sum(layer.norm_bias_sizes), per_unit=0)


def lora_targets(layer: LayerSpec, options: StrategyOptions):
    return [p for p in layer.linears() if p.role in options.lora_targets]


def lora_cost(layer: LayerSpec, options: StrategyOptions) -> Cost:
    return Cost(fixed=0, per_unit=sum(p.in_features + p.out_features for p in lora_targets(layer, options)))


COSTS = {"A": adapter_cost, "P": prefix_cost, "B": bitfit_cost, "L": lora_cost}
TRAINING_COSTS = {**COSTS, "P": prefix_training_cost}


def strategy_count(strategy: str, layer: LayerSpec, options: StrategyOptions, size: int, *, training: bool = False) -> int:
    cost = (TRAINING_COSTS if training else COSTS)[strategy](layer, options)
    return cost.at(size)
