"""Attaching strategy modules to backbone modules without replacing them.

A strategy module becomes a child of the module it modifies (so it is saved, moved and counted
with the model) and acts through a forward hook bound to it; detaching removes exactly its hooks.
Hooks on one module run in the order strategies are applied (BitFit, LoRA, then Adapter), so an
adapter on an FFN output sees that output's bias delta and LoRA update.
"""

from __future__ import annotations

from torch import nn

PREFIX = "peftspace_"


def attach(target: nn.Module, name: str, module: nn.Module, *, hook=None, pre_hook=None) -> nn.Module:
    if hasattr(target, name):
        raise RuntimeError(f"{type(target).__name__} already has {name}; apply a design only once")
    target.add_module(name, module)
    if hook is not None:
        target.register_forward_hook(hook)
    if pre_hook is not None:
        target.register_forward_pre_hook(pre_hook, with_kwargs=True)
    return module


def detach(target: nn.Module, name: str) -> nn.Module:
    module = getattr(target, name)
    for hooks in (target._forward_hooks, target._forward_pre_hooks):
        for key in [k for k, h in hooks.items() if getattr(h, "__self__", None) is module]:
            del hooks[key]
    delattr(target, name)
    return module


def attached(model: nn.Module, kind: type) -> list[tuple[nn.Module, str, nn.Module]]:
    """Every (target, name, module) of strategy type ``kind`` attached somewhere in ``model``."""
    found = []
    for target in model.modules():
        for name, child in list(target.named_children()):
            if name.startswith(PREFIX) and isinstance(child, kind):
                found.append((target, name, child))
    return found


def pad_to_slice(delta, out_slice: slice | None, width: int):
    """Place ``delta`` (last dim = slice width) at ``out_slice`` of a zero tensor ``width`` wide."""
    if out_slice is None:
        return delta
    return nn.functional.pad(delta, (out_slice.start, width - out_slice.stop))


def fold_all(model: nn.Module, kind: type) -> int:
    """Fold every attached ``kind`` module into its target (``merge_into``) and remove it."""
    found = attached(model, kind)
    for target, name, module in found:
        module.merge_into(target)
        detach(target, name)
    return len(found)
