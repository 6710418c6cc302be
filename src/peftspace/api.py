"""The Python API: plan, apply, save, load, merge, export_peft."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from peftspace import __version__
from peftspace.design import Design, DesignError, ModelError, Plan, resolve
from peftspace.families import FAMILIES, backbone_parameters, backbone_spec, blocks, family_of
from peftspace.strategies import STRATEGY_MODULES
from peftspace.strategies._hooks import PREFIX

STATE_ATTRIBUTE = "peftspace_plan"
DESIGN_FILE = "peftspace_design.json"
WEIGHTS_FILE = "peftspace_weights.safetensors"


def plan(model_or_config, design: Design | str) -> Plan:
    """The per-layer plan of ``design`` on a model or config, without touching any weights."""
    return resolve(_as_design(design), backbone_spec(model_or_config))  # refuses strategies the family cannot take


def _check_prefix(the_plan: Plan) -> None:
    """A plan made elsewhere (a file) may still ask for prefixes on a family that cannot take them."""
    family = FAMILIES.get(the_plan.family)
    layers = [layer.index for layer in the_plan.layers if "P" in layer.sizes]
    if layers and family is not None and not family.can("prefix"):
        raise ModelError(f"prefix tuning (P) is not available on the {the_plan.family} family ({the_plan.model_type}), "
                         f"asked for in layers {layers}: {family.prefix_note or 'its family map does not declare prefix'}")


def apply(model: nn.Module, design: Design | Plan | str) -> Plan:
    """Inject ``design`` into ``model`` in place: freeze everything, train exactly the design.

    Returns the plan; the trainable parameters are exactly those the strategies created.
    """
    if hasattr(model, STATE_ATTRIBUTE):
        raise DesignError("this model already has a peftspace design; load a fresh backbone to apply another")
    the_plan = design if isinstance(design, Plan) else plan(model, design)
    if isinstance(design, Plan):
        _check_prefix(the_plan)
    found, size = blocks(model), backbone_parameters(model)
    if the_plan.family != family_of(model.config) or the_plan.backbone_parameters != size:
        raise ModelError(f"the plan was made for another backbone ({the_plan.model_type}, {the_plan.backbone_parameters:,} parameters) "
                         f"than this {model.config.model_type} with {size:,}")
    for layer in the_plan.layers:
        if "P" in layer.sizes:
            STRATEGY_MODULES["P"].check(found[layer.index])  # fail before the model changes
    found = blocks(model, prepare=True)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    created: list[nn.Module] = []
    for layer in the_plan.layers:
        for letter, strategy in STRATEGY_MODULES.items():
            if letter in layer.sizes:
                created.extend(strategy.apply(found[layer.index], layer.sizes[letter], the_plan.options))
    declared = {id(p) for module in created for p in module.parameters()}
    for module in created:
        module.requires_grad_(True)
        module.train(model.training)  # a model loaded for inference must not get dropout in its new parts
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == declared, "trainable set differs from the strategies' parameters"
    setattr(model, STATE_ATTRIBUTE, the_plan)
    return the_plan


def trainable_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def design_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter peftspace added (trainable or folded), by its name in ``model``."""
    return {name: p for name, p in model.named_parameters() if PREFIX in name}


def save(model: nn.Module, directory: str | Path) -> Path:
    """Write the plan (JSON) and the design's parameters (safetensors) to ``directory``."""
    from safetensors.torch import save_file

    the_plan = _plan_of(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record = {"peftspace_version": __version__, "plan": the_plan.to_dict(),
              "merged": bool(getattr(model, "peftspace_merged", False))}
    (directory / DESIGN_FILE).write_text(json.dumps(record, indent=2) + "\n")
    tensors = {name: p.detach().contiguous().cpu() for name, p in design_parameters(model).items()}
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt", "peftspace_version": __version__})
    return directory


def load(base_model: nn.Module, directory: str | Path) -> nn.Module:
    """Apply the saved design to ``base_model`` and load its trained parameters (no pickle)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    design_file, weights_file = directory / DESIGN_FILE, directory / WEIGHTS_FILE
    for path in (design_file, weights_file):
        if not path.is_file():
            raise ModelError(f"{str(directory)!r} is not a saved peftspace design: {path.name} is missing")
    try:
        record = json.loads(design_file.read_text())
    except json.JSONDecodeError as error:
        raise ModelError(f"{design_file} is not valid JSON: {error}") from None
    if record.get("merged"):
        raise ModelError(f"{directory} holds a merged design; its LoRA/BitFit deltas live in the full model weights, "
                         "save the merged model with save_pretrained instead")
    saved_plan = Plan.from_dict(record["plan"])
    tensors = load_file(str(weights_file))
    _check_weights(base_model, saved_plan, tensors)  # before touching the user's model
    apply(base_model, saved_plan)
    with torch.no_grad():
        for name, parameter in design_parameters(base_model).items():
            parameter.copy_(tensors[name])
    return base_model


def _check_weights(base_model: nn.Module, saved_plan: Plan, tensors: dict[str, torch.Tensor]) -> None:
    """Apply the plan to a weightless twin of ``base_model`` and compare names and shapes."""
    with torch.device("meta"):
        twin = type(base_model)(base_model.config)
    apply(twin, saved_plan)
    expected = {name: tuple(p.shape) for name, p in design_parameters(twin).items()}
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelError(f"saved weights do not match the design on this model: missing {missing[:3]}, unexpected {unexpected[:3]}"
                         " (was it saved from another model class, e.g. with or without a task head?)")
    wrong = [f"{n} {tuple(tensors[n].shape)} vs {shape}" for n, shape in expected.items() if tuple(tensors[n].shape) != shape]
    if wrong:
        raise ModelError(f"saved weights have the wrong shapes for this model: {wrong[:3]}")


def merge(model: nn.Module) -> nn.Module:
    """Fold LoRA and BitFit into the backbone's weights and prefix MLPs into plain prefixes.

    Afterwards the LoRA/BitFit modules and hooks are gone; adapters and prefixes stay (they add
    computation that cannot be folded), as plain modules.
    """
    _plan_of(model)
    for letter in ("L", "B", "P"):
        STRATEGY_MODULES[letter].merge(model)
    model.peftspace_merged = True
    return model


def export_peft(model: nn.Module, directory: str | Path) -> Path:
    from peftspace.export import export_peft as _export

    return _export(model, _plan_of(model), directory)


def _plan_of(model: nn.Module) -> Plan:
    the_plan = getattr(model, STATE_ATTRIBUTE, None)
    if the_plan is None:
        raise ModelError("this model has no peftspace design; call peftspace.apply(model, design) first")
    return the_plan


def _as_design(design: Design | str) -> Design:
    if isinstance(design, Design):
        return design
    if isinstance(design, str):
        from peftspace.design.presets import PRESETS, preset

        return preset(design) if design in PRESETS or not Path(design).suffix else Design.load(design)
    raise DesignError(f"expected a Design, a preset name or a design file, got {type(design).__name__}")
