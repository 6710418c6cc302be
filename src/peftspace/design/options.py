"""Options of the four strategies, shared by every layer of a design."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from peftspace.design.backbone import ATTENTION_ROLES, FFN_ROLES
from peftspace.design.errors import check_fields

ADAPTER_PLACEMENTS = ("pfeiffer", "houlsby", "parallel")
NONLINEARITIES = ("relu", "gelu", "tanh", "silu")
LORA_SCALINGS = ("standard", "rslora")
LORA_TARGETS = ATTENTION_ROLES + FFN_ROLES


@dataclass(frozen=True)
class StrategyOptions:
    """How each strategy is built; sizes come from the budget, everything else from here.

    Attributes:
        adapter_placement: "pfeiffer" (one adapter after the FFN), "houlsby" (after the
            self-attention output and after the FFN) or "parallel" (He et al.: beside the FFN).
        adapter_nonlinearity: activation between the adapter's down- and up-projection.
        adapter_scaling: factor on the adapter's output (He et al. use 4 for parallel adapters).
        prefix_reparameterize: train prefixes through an MLP (Li & Liang); folded into plain
            prefixes by ``merge``. Budgets always count the folded size.
        prefix_mlp_hidden: hidden width of that MLP.
        lora_targets: projections LoRA adapts, in every attention module of a tuned layer
            (q, k, v, o) and in the FFN (ffn_in, ffn_out).
        lora_alpha: LoRA's alpha; the update is scaled by alpha/r ("standard") or
            alpha/sqrt(r) ("rslora").
        lora_dropout: dropout on LoRA's input during training.
    """

    adapter_placement: str = "pfeiffer"
    adapter_nonlinearity: str = "relu"
    adapter_scaling: float = 1.0
    prefix_reparameterize: bool = False
    prefix_mlp_hidden: int = 512
    lora_targets: tuple[str, ...] = ("q", "v")
    lora_alpha: float = 16.0
    lora_scaling: str = "standard"
    lora_dropout: float = 0.0

    def problems(self) -> list[str]:
        found = []
        if self.adapter_placement not in ADAPTER_PLACEMENTS:
            found.append(f"options.adapter_placement={self.adapter_placement!r} is unknown; use one of {list(ADAPTER_PLACEMENTS)}")
        if self.adapter_nonlinearity not in NONLINEARITIES:
            found.append(f"options.adapter_nonlinearity={self.adapter_nonlinearity!r} is unknown; use one of {list(NONLINEARITIES)}")
        if not _is_number(self.adapter_scaling) or self.adapter_scaling <= 0:
            found.append(f"options.adapter_scaling={self.adapter_scaling!r} must be a positive number")
        if not isinstance(self.prefix_reparameterize, bool):
            found.append(f"options.prefix_reparameterize={self.prefix_reparameterize!r} must be true or false")
        if not _is_int(self.prefix_mlp_hidden) or self.prefix_mlp_hidden < 1:
            found.append(f"options.prefix_mlp_hidden={self.prefix_mlp_hidden!r} must be a positive integer")
        targets = self.lora_targets
        if isinstance(targets, str) or not isinstance(targets, (tuple, list)) or not targets:
            found.append(f"options.lora_targets={targets!r} must be a non-empty list drawn from {list(LORA_TARGETS)}")
        else:
            unknown = [t for t in targets if t not in LORA_TARGETS]
            if unknown:
                found.append(f"options.lora_targets has unknown target(s) {unknown}; use names from {list(LORA_TARGETS)}")
            if len(set(map(str, targets))) != len(targets):
                found.append(f"options.lora_targets={list(targets)} repeats a target")
        if not _is_number(self.lora_alpha) or self.lora_alpha <= 0:
            found.append(f"options.lora_alpha={self.lora_alpha!r} must be a positive number")
        if self.lora_scaling not in LORA_SCALINGS:
            found.append(f"options.lora_scaling={self.lora_scaling!r} is unknown; use one of {list(LORA_SCALINGS)}")
        if not _is_number(self.lora_dropout) or not 0.0 <= self.lora_dropout < 1.0:
            found.append(f"options.lora_dropout={self.lora_dropout!r} must be a number in [0, 1)")
        return found

    def to_dict(self) -> dict:
        data = asdict(self)
        data["lora_targets"] = list(self.lora_targets) if isinstance(self.lora_targets, (list, tuple)) else self.lora_targets
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "StrategyOptions":
        data = check_fields(data, cls, "options", word="key")
        if isinstance(data.get("lora_targets"), list):
            data["lora_targets"] = tuple(data["lora_targets"])
        return cls(**data)

    def lora_scale(self, rank: int) -> float:
        return self.lora_alpha / (rank**0.5 if self.lora_scaling == "rslora" else rank)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
