"""Resolve a design on a backbone: groups -> tuned layers -> per-layer budget -> strategy sizes.

Per layer, BitFit's fixed cost is paid first; the rest is split equally among the sizeable
strategies (A, P, L), each turned into a size through its analytic cost. Sizes are rounded with
error diffusion along the layers (per strategy), so the plan's total stays within half a unit per
strategy of the budget while each layer keeps its share.
"""

from __future__ import annotations

import math

from peftspace.design.backbone import BackboneSpec
from peftspace.design.counts import COSTS, SIZEABLE, STRATEGY_NAMES, TRAINING_COSTS
from peftspace.design.design import Design
from peftspace.design.errors import DesignError
from peftspace.design.grouping import group_ranges
from peftspace.design.plan import LayerPlan, Plan

UNIFORM_TOLERANCE = 0.02


def allocation_weights(allocation: str, n: int) -> list[float]:
    """Relative budget of each of ``n`` tuned layers in depth order (linear ramps)."""
    if allocation == "increasing":
        return [float(i + 1) for i in range(n)]
    if allocation == "decreasing":
        return [float(n - i) for i in range(n)]
    return [1.0] * n


def split_integer(total: int, weights: list[float]) -> list[int]:
    """Largest-remainder split of ``total`` in proportion to ``weights``; sums exactly to total."""
    quotas = [total * w / sum(weights) for w in weights]
    parts = [math.floor(q) for q in quotas]
    for i in sorted(range(len(parts)), key=lambda i: (parts[i] - quotas[i], i))[: total - sum(parts)]:
        parts[i] += 1
    return parts


def resolve(design: Design, backbone: BackboneSpec) -> Plan:
    """Turn a design into the exact per-layer plan for ``backbone``; raises DesignError."""
    design.validate()
    ranges, problems = group_ranges(design.grouping, design.group_count, backbone.num_layers)
    if problems:
        raise DesignError(problems)
    budget = design.budget_for(backbone.num_parameters)
    if budget > backbone.num_parameters:
        raise DesignError(f"budget_params={budget:,} exceeds the backbone's {backbone.num_parameters:,} parameters")
    subsets = design.group_strategies()
    problems = [f"group {g}: {STRATEGY_NAMES[s]} ({s}) is not available on this {backbone.model_type} backbone: {why}"
                for g in design.tuned() for s, why in backbone.unavailable if s in subsets[g]]
    if problems:
        raise DesignError(problems)
    tuned_layers = [(g, i) for g in design.tuned() for i in range(ranges[g][0], ranges[g][1] + 1)]
    layer_budgets = split_integer(budget, allocation_weights(design.allocation, len(tuned_layers)))

    options, problems, rows = design.options, [], []
    real_sizes: list[dict[str, float]] = []
    for (group, index), layer_budget in zip(tuned_layers, layer_budgets):
        spec, subset = backbone.layers[index], subsets[group]
        sizeable = [s for s in subset if s in SIZEABLE]
        rest = layer_budget - (COSTS["B"](spec, options).fixed if "B" in subset else 0)
        sizes: dict[str, float] = {"B": 1.0} if "B" in subset else {}
        if sizeable and rest <= 0:
            problems.append(
                f"layer {index} (group {group}): its budget of {layer_budget} parameters does not cover BitFit's "
                f"{layer_budget - rest}, leaving nothing for {', '.join(STRATEGY_NAMES[s] for s in sizeable)}; raise the budget or drop a strategy")
        for s in sizeable:
            cost = COSTS[s](spec, options)
            size = (rest / len(sizeable) - cost.fixed) / cost.per_unit
            if size < 0.5:
                problems.append(
                    f"layer {index} (group {group}): {STRATEGY_NAMES[s]} size rounds below 1 ({max(size, 0):.2f}) with "
                    f"{layer_budget} parameters for this layer; raise the budget or drop {STRATEGY_NAMES[s]} from group {group}")
            sizes[s] = size
        real_sizes.append(sizes)
    if problems:
        raise DesignError(problems)

    carry: dict[str, float] = {}
    for (group, index), layer_budget, sizes in zip(tuned_layers, layer_budgets, real_sizes):
        spec = backbone.layers[index]
        rounded = {}
        for s, size in sizes.items():
            rounded[s] = 1 if s == "B" else max(1, round(size + carry.get(s, 0.0)))
            carry[s] = carry.get(s, 0.0) + size - rounded[s]
        rows.append(LayerPlan(
            index=index, stack=spec.stack, group=group, budget=layer_budget, sizes=rounded,
            counts={s: COSTS[s](spec, options).at(0 if s == "B" else n) for s, n in rounded.items()},
            training_counts={s: TRAINING_COSTS[s](spec, options).at(0 if s == "B" else n) for s, n in rounded.items()},
        ))
    plan = Plan(design=design, family=backbone.family, model_type=backbone.model_type,
                backbone_parameters=backbone.num_parameters, budget=budget, groups=tuple(ranges), layers=tuple(rows))
    return _with_notes(plan, backbone)


def _with_notes(plan: Plan, backbone: BackboneSpec) -> Plan:
    from dataclasses import replace

    notes = []
    if plan.budget and abs(plan.total - plan.budget) > UNIFORM_TOLERANCE * plan.budget:
        why = ("BitFit has a fixed size set by the backbone, not by the budget"
               if any("B" in l.sizes and len(l.sizes) == 1 for l in plan.layers)
               else "integer sizes cannot reach it closer at this budget")
        notes.append(f"planned {plan.total:,} parameters is {100 * (plan.total / plan.budget - 1):+.1f}% off the budget of {plan.budget:,}: {why}")
    bitfit_layers = [backbone.layers[l.index] for l in plan.layers if "B" in l.sizes]
    added = sorted({p.role for layer in bitfit_layers for p in layer.linears() if not p.has_bias})
    if added:
        count = sum(1 for layer in bitfit_layers for p in layer.linears() if not p.has_bias)
        notes.append(f"BitFit adds zero-initialized biases to {count} projections ({', '.join(added)}) "
                     f"that have none in this {plan.model_type} backbone")
    if plan.training_total != plan.total:
        notes.append(f"prefix MLP reparameterization trains {plan.training_total:,} parameters; merge() folds them to {plan.total:,}")
    return replace(plan, notes=tuple(notes))
