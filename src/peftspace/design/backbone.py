"""A torch-free description of a backbone's blocks: what the analytic counts need.

The torch side (``peftspace.families``) reads these shapes off real (or meta-device) modules; the
design layer only ever sees this plain data, so planning and sampling never need a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ATTENTION_ROLES = ("q", "k", "v", "o")
FFN_ROLES = ("ffn_in", "ffn_out")


@dataclass(frozen=True)
class LinearSpec:
    """One projection: ``role`` is q/k/v/o or ffn_in/ffn_out."""

    role: str
    in_features: int
    out_features: int
    has_bias: bool


@dataclass(frozen=True)
class AttentionSpec:
    """One attention module of a block (``kind`` is "self" or "cross")."""

    kind: str
    kv_dim: int  # key/value heads x head dim: the width of one prefix key (or value) vector
    projections: tuple[LinearSpec, ...]

    def projection(self, role: str) -> LinearSpec:
        for linear in self.projections:
            if linear.role == role:
                return linear
        raise KeyError(role)


@dataclass(frozen=True)
class LayerSpec:
    """One transformer block at global index ``index`` (encoder blocks first, then decoder)."""

    index: int
    stack: str  # "encoder" or "decoder"
    hidden_size: int
    attentions: tuple[AttentionSpec, ...]
    ffn: tuple[LinearSpec, ...]
    norm_bias_sizes: tuple[int, ...] = ()  # sizes of the block's norm biases (empty for RMSNorm/T5)

    def linears(self) -> tuple[LinearSpec, ...]:
        return tuple(p for a in self.attentions for p in a.projections) + self.ffn


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone's blocks in global order and its parameter count (task heads excluded).

    ``unavailable`` holds (strategy letter, why) for strategies its family cannot take (DeBERTa: "P").
    """

    family: str
    model_type: str
    num_parameters: int
    layers: tuple[LayerSpec, ...] = field(default_factory=tuple)
    unavailable: tuple[tuple[str, str], ...] = ()

    @property
    def num_layers(self) -> int:
        return len(self.layers)
