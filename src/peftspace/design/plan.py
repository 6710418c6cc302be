"""A design resolved against one backbone: per-layer strategies, sizes and parameter counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from peftspace.design.counts import STRATEGIES
from peftspace.design.design import Design
from peftspace.design.errors import DesignError
from peftspace.design.options import StrategyOptions


@dataclass(frozen=True)
class LayerPlan:
    """What one block trains. ``sizes`` maps a strategy letter to its size (BitFit: 1)."""

    index: int
    stack: str
    group: int
    budget: int
    sizes: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    training_counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        """Compact sizes, e.g. "A=12 P=8 B" (B: BitFit has no size)."""
        return " ".join(s if s == "B" else f"{s}={self.sizes[s]}" for s in STRATEGIES if s in self.sizes) or "-"


@dataclass(frozen=True)
class Plan:
    """The per-layer plan of a design on a backbone; ``apply`` builds exactly this.

    ``total`` counts prefixes by their folded size; ``training_total`` counts what trains while
    the prefix MLP reparameterization is on (equal to ``total`` when it is off).
    """

    design: Design
    family: str
    model_type: str
    backbone_parameters: int
    budget: int
    groups: tuple[tuple[int, int], ...]
    layers: tuple[LayerPlan, ...]
    notes: tuple[str, ...] = ()

    @property
    def options(self) -> StrategyOptions:
        return self.design.options

    @property
    def total(self) -> int:
        return sum(layer.total for layer in self.layers)

    @property
    def training_total(self) -> int:
        return sum(sum(layer.training_counts.values()) for layer in self.layers)

    @property
    def fraction(self) -> float:
        return self.total / self.backbone_parameters

    def strategy_totals(self) -> dict[str, int]:
        totals = {s: 0 for s in STRATEGIES}
        for layer in self.layers:
            for s, n in layer.counts.items():
                totals[s] += n
        return {s: n for s, n in totals.items() if n}

    def layer(self, index: int) -> LayerPlan:
        for layer in self.layers:
            if layer.index == index:
                return layer
        raise DesignError(f"layer {index} is not tuned by this plan")

    def to_dict(self) -> dict:
        return {
            "design": self.design.to_dict(),
            "family": self.family,
            "model_type": self.model_type,
            "backbone_parameters": self.backbone_parameters,
            "budget": self.budget,
            "groups": [list(g) for g in self.groups],
            "layers": [
                {"index": l.index, "stack": l.stack, "group": l.group, "budget": l.budget, "sizes": l.sizes,
                 "counts": l.counts, "training_counts": l.training_counts}
                for l in self.layers
            ],
            "notes": list(self.notes),
            "total": self.total,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        try:
            return cls(
                design=Design.from_dict(data["design"]),
                family=data["family"],
                model_type=data["model_type"],
                backbone_parameters=int(data["backbone_parameters"]),
                budget=int(data["budget"]),
                groups=tuple(tuple(g) for g in data["groups"]),
                layers=tuple(
                    LayerPlan(index=l["index"], stack=l["stack"], group=l["group"], budget=l["budget"],
                              sizes=dict(l["sizes"]), counts=dict(l["counts"]),
                              training_counts=dict(l["training_counts"]))
                    for l in data["layers"]
                ),
                notes=tuple(data.get("notes", ())),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DesignError(f"saved plan is malformed ({type(error).__name__}: {error})") from None
