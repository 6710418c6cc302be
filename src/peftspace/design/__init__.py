"""The design layer: designs, groupings, budgets and analytic counts. Imports no torch."""

from peftspace.design.allocation import resolve
from peftspace.design.backbone import AttentionSpec, BackboneSpec, LayerSpec, LinearSpec
from peftspace.design.counts import STRATEGIES, STRATEGY_NAMES, strategy_count
from peftspace.design.design import ALLOCATIONS, Design
from peftspace.design.errors import DesignError, ModelError, PeftspaceError
from peftspace.design.grouping import PATTERN_NAMES, group_ranges, pattern_ratios, round_sizes
from peftspace.design.options import StrategyOptions
from peftspace.design.plan import LayerPlan, Plan

__all__ = [
    "ALLOCATIONS", "PATTERN_NAMES", "STRATEGIES", "STRATEGY_NAMES", "AttentionSpec", "BackboneSpec",
    "Design", "DesignError", "ModelError", "PeftspaceError", "LayerPlan", "LayerSpec", "LinearSpec", "Plan", "StrategyOptions",
    "group_ranges", "pattern_ratios", "resolve", "round_sizes", "strategy_count",
]
