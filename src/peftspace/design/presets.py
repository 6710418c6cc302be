"""Baseline designs at the default 0.5% budget, and the recalled T5-base S4 design.

Every preset is an ordinary ``Design``; change its budget with ``Design.with_budget``.
"""

from __future__ import annotations

from peftspace.design.design import Design
from peftspace.design.errors import DesignError
from peftspace.design.options import StrategyOptions

PRESETS: dict[str, Design] = {
    "adapter": Design(name="adapter", strategies=("A",),
                      description="Bottleneck adapter after every FFN (Pfeiffer placement), uniform over all layers."),
    "prefix": Design(name="prefix", strategies=("P",),
                     description="Prefix tuning in every attention module, uniform over all layers."),
    "bitfit": Design(name="bitfit", strategies=("B",),
                     description="BitFit: every bias of every layer (zero-initialized where the backbone has none). "
                                 "Fixed size: the budget does not change it."),
    "lora": Design(name="lora", strategies=("L",),
                   description="LoRA on the query and value projections, uniform over all layers."),
    "parallel-adapter": Design(name="parallel-adapter", strategies=("A",),
                               options=StrategyOptions(adapter_placement="parallel", adapter_scaling=4.0),
                               description="Parallel adapter beside every FFN, scaled by 4 (He et al., 2022)."),
    "mam": Design(name="mam", strategies=("AP",),
                  options=StrategyOptions(adapter_placement="parallel", adapter_scaling=4.0),
                  description="MAM-like mix (He et al., 2022): prefix tuning plus a parallel FFN adapter in every layer, "
                              "budget split equally between them."),
    "s4-t5-base-recalled": Design(
        name="s4-t5-base-recalled", grouping="spindle", num_groups=4, allocation="uniform",
        strategies=("AL", "AP", "APB", "PBL"),
        description="RECALLED, NOT VERIFIED: the paper's T5-base S4 design as remembered (spindle grouping, uniform "
                    "allocation, all groups tuned, G1-(A,L) G2-(A,P) G3-(A,P,B) G4-(P,B,L)). The paper's full text "
                    "was not available to check it."),
}


def preset(name: str) -> Design:
    try:
        return PRESETS[name]
    except KeyError:
        raise DesignError(f"unknown preset {name!r}; presets are {sorted(PRESETS)}") from None
