"""The design layer imports no torch (STYLE.md rule 1), proven in a fresh interpreter.

A meta-path finder installed before the import records every attempt to import torch or
transformers (even one guarded by try/except), so the check holds whether or not torch is installed.
"""

from __future__ import annotations

import pytest

from import_probe import run_probe


@pytest.mark.parametrize("statements", [
    ("import peftspace.design",),
    ("import peftspace.design.presets",),
    ("import peftspace",),
    ("import peftspace", "peftspace.Design, peftspace.DesignError, peftspace.Plan, peftspace.PRESETS, peftspace.preset"),
    ("from peftspace.design import Design, resolve, BackboneSpec",
     "from peftspace.design.presets import PRESETS",
     "import peftspace.design.allocation, peftspace.design.counts, peftspace.design.grouping, "
     "peftspace.design.options, peftspace.design.plan, peftspace.design.backbone, peftspace.design.errors"),
], ids=["design", "presets", "peftspace", "lazy-top-level-names", "every-design-module"])
def test_design_layer_imports_no_torch(statements):
    report = run_probe(*statements)
    assert report == {"attempts": [], "loaded": []}


def test_design_layer_resolves_and_serializes_without_torch():
    # planning, YAML and JSON round-trips all run without ever touching torch
    report = run_probe(
        "from peftspace.design import Design, resolve, BackboneSpec, LayerSpec, AttentionSpec, LinearSpec",
        "from peftspace.design.presets import PRESETS",
        "att = AttentionSpec('self', 8, tuple(LinearSpec(r, 8, 8, True) for r in 'qkvo'))",
        "ffn = (LinearSpec('ffn_in', 8, 32, True), LinearSpec('ffn_out', 32, 8, True))",
        "layers = tuple(LayerSpec(i, 'encoder', 8, (att,), ffn) for i in range(4))",
        "plan = resolve(PRESETS['lora'].with_budget(params=384), BackboneSpec('bert', 'bert', 10000, layers))",
        "assert plan.total == 384, plan.total",  # 96 per layer: rank 96 / ((8+8) x 2 targets) = 3
        "Design.from_yaml(PRESETS['mam'].to_yaml()); Design.from_json(PRESETS['mam'].to_json())",
    )
    assert report == {"attempts": [], "loaded": []}


def test_the_probe_does_see_a_torch_import():
    # control: the same probe notices an import of torch (attempted even if torch is not installed)
    report = run_probe("try:\n    import torch\nexcept ImportError:\n    pass")
    assert report["attempts"][:1] == ["torch"]
