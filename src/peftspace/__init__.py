"""peftspace: parameter-efficient fine-tuning design spaces (Chen et al., ICLR 2023).

The top-level API is imported lazily so that ``import peftspace.design`` never pulls in torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "plan": "peftspace.api",
    "apply": "peftspace.api",
    "save": "peftspace.api",
    "load": "peftspace.api",
    "merge": "peftspace.api",
    "export_peft": "peftspace.api",
    "trainable_parameters": "peftspace.api",
    "backbone_spec": "peftspace.families",
    "Design": "peftspace.design",
    "DesignError": "peftspace.design",
    "StrategyOptions": "peftspace.design",
    "Plan": "peftspace.design",
    "preset": "peftspace.design.presets",
    "PRESETS": "peftspace.design.presets",
}

__all__ = sorted(_API)


_SUBMODULES = ("families",)  # ``peftspace.families.register(...)`` after a plain ``import peftspace``


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"peftspace.{name}")
    raise AttributeError(f"module 'peftspace' has no attribute {name!r}")
