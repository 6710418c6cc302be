"""Export a LoRA-only design in HF peft's adapter format (``PeftModel.from_pretrained`` loads it).

Per-layer ranks go to ``rank_pattern``. LoRAs on output slices of one fused projection (GPT-2's
``c_attn``) become one block-structured LoRA on that projection, exactly equal to their sum.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from peftspace.design import ModelError, Plan
from peftspace.families import is_transposed
from peftspace.strategies.lora import LoRA

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


def export_peft(model: nn.Module, plan: Plan, directory: str | Path) -> Path:
    from safetensors.torch import save_file

    others = sorted({s for layer in plan.layers for s in layer.sizes} - {"L"})
    if others:
        raise ModelError(f"export_peft writes LoRA-only designs; this design also has {others} "
                         "(use peftspace.save, or merge() first to fold BitFit and LoRA into the weights)")
    loras: dict[str, list[LoRA]] = defaultdict(list)
    targets: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        for child in module.children():
            if isinstance(child, LoRA):
                loras[name].append(child)
                targets[name] = module
    if not loras:
        raise ModelError("this model has no LoRA modules left to export (was it merged?)")

    options, tensors, ranks, alphas = plan.options, {}, {}, {}
    for name, parts in loras.items():
        a, b, scale = _combined(parts)
        rank = a.shape[0]
        ranks[name] = rank
        alphas[name] = scale * (math.sqrt(rank) if options.lora_scaling == "rslora" else rank)
        tensors[f"base_model.model.{name}.lora_A.weight"] = a.contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = b.contiguous()
    default_rank = max(set(ranks.values()), key=list(ranks.values()).count)
    transposed = {is_transposed(t) for t in targets.values()}
    if len(transposed) > 1:
        raise ModelError("peft cannot mix Conv1D and Linear LoRA targets in one adapter")
    config = {
        "peft_type": "LORA",
        "task_type": None,
        "base_model_name_or_path": getattr(model.config, "_name_or_path", None) or None,
        "r": default_rank,
        "lora_alpha": options.lora_alpha,
        "lora_dropout": options.lora_dropout,
        "target_modules": sorted(loras),
        "rank_pattern": {n: r for n, r in ranks.items() if r != default_rank},
        "alpha_pattern": {n: a for n, a in alphas.items() if not math.isclose(a, options.lora_alpha)},
        "use_rslora": options.lora_scaling == "rslora",
        "fan_in_fan_out": transposed.pop(),
        "bias": "none",
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    return directory


@torch.no_grad()
def _combined(parts: list[LoRA]) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One (A, B, scale) equal to the sum of the LoRAs on one module's output slices."""
    if len(parts) == 1 and parts[0].out_slice is None:
        lora = parts[0]
        return lora.lora_A.weight.detach().cpu(), lora.lora_B.weight.detach().cpu(), lora.scale
    width, rank = parts[0].full_width, sum(p.rank for p in parts)
    a = torch.cat([p.lora_A.weight.detach().cpu() for p in parts])
    b = torch.zeros(width, rank, dtype=a.dtype)
    column = 0
    for p in parts:  # scales differ only if ranks do: bake each into its block, export scale 1
        b[p.out_slice, column:column + p.rank] = p.lora_B.weight.detach().cpu() * p.scale
        column += p.rank
    return a, b, 1.0
