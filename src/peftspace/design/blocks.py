"""Paired blocks for a stage: one draw of everything the stage does not compare, instantiated with every option.

A stage compares the options of one component (the grouping patterns, the allocation rules, all vs
any tuned groups, or whole strategy assignments). A **block** draws a *context* design from the
stage's space (its other components) and a seed, then builds one design per option by setting the
compared component to that option; so the options of a block differ in that component only.
Contexts in which some option is infeasible are drawn again, so every block holds every option.

Two designs **build the same thing** when they give every layer the same strategies and sizes with
the same options (:func:`build_key`): the strategies drawn for a group that is not tuned, or a
grouping whose sizes coincide with another's on this backbone, make no difference. Options that
build the same design in every probe context are **aliases** (:func:`find_aliases`): a stage races
one of them and reports the others beside it. No torch here.
"""

from __future__ import annotations

import json
from dataclasses import replace

from peftspace.design.allocation import resolve
from peftspace.design.backbone import BackboneSpec
from peftspace.design.design import Design
from peftspace.design.errors import DesignError

COMPONENTS = ("grouping", "allocation", "tuned", "assignment")


def build_key(design: Design, backbone: BackboneSpec) -> str:
    """What ``design`` builds on ``backbone``: per layer its strategies' sizes, and the strategy options.

    Raises:
        DesignError: the design is infeasible there.
    """
    plan = resolve(design, backbone)
    layers = [[layer.index, sorted(layer.sizes.items())] for layer in plan.layers if layer.sizes]
    return json.dumps({"layers": layers, "options": design.options.to_dict()}, sort_keys=True)


def instantiate(context: Design, component: str, option: str, num_groups: int, option_seed) -> Design:
    """The block's design for one option: ``context`` with ``component`` set to ``option``.

    ``tuned`` options are ``"all"`` or ``"any"`` (a non-empty subset of groups drawn from
    ``option_seed``, the same for every option of the block); ``assignment`` options are
    comma-separated subsets, one per group (``"AL,AP,APB,PBL"``).
    """
    import numpy as np

    if component == "grouping":
        return replace(context, grouping=option, num_groups=num_groups)
    if component == "allocation":
        return replace(context, allocation=option)
    if component == "tuned":
        if option == "all":
            return replace(context, tuned_groups=None)
        if option != "any":
            raise DesignError(f"tuned option {option!r} must be 'all' or 'any'")
        mask = int(np.random.default_rng(option_seed).integers(1, 2 ** num_groups))
        tuned = tuple(g for g in range(num_groups) if mask >> g & 1)
        return replace(context, tuned_groups=None if len(tuned) == num_groups else tuned)
    if component == "assignment":
        subsets = tuple(s.strip() for s in option.split(","))
        if len(subsets) != num_groups:
            raise DesignError(f"assignment option {option!r} names {len(subsets)} subsets for {num_groups} groups")
        return replace(context, strategies=subsets)
    raise DesignError(f"unknown block component {component!r}; use one of {list(COMPONENTS)}")


def draw_blocks(space, component: str, options, count: int, seed, backbone: BackboneSpec, *,
                max_attempts: int = 200) -> list[dict]:
    """``count`` blocks: each ``{"block", "seed", "context", "designs": {option: Design}}``, feasible for every option.

    Deterministic for ``seed`` (an int or a sequence of ints, as numpy takes it). The trial seed of
    block b is drawn from the same stream, so every option of a block trains from the same seed.

    Raises:
        DesignError: no context feasible for every option within ``max_attempts`` draws of a block.
    """
    import numpy as np

    from peftspace.design.space import draw

    rng = np.random.default_rng(seed)
    blocks = []
    for block in range(count):
        for _attempt in range(max_attempts):
            context = draw(space, backbone.num_layers, rng)
            option_seed = int(rng.integers(2 ** 31))
            designs = {o: instantiate(context, component, o, space.num_groups, option_seed) for o in options}
            if all(_feasible(d, backbone) for d in designs.values()):
                break
        else:
            raise DesignError(f"space {space.name!r}: no context in {max_attempts} draws is feasible for every option "
                              f"{list(options)} of {component} (block {block}); the budget may be too small")
        blocks.append({"block": block, "seed": int(rng.integers(2 ** 31)), "context": context, "designs": designs})
    return blocks


def find_aliases(space, component: str, options, backbone: BackboneSpec, seed=0, probes: int = 16) -> dict[str, str]:
    """Option -> the option it is raced as: itself, or the first listed option that builds the same design in every probe.

    Probes are blocks drawn as :func:`draw_blocks` draws them (with their own seed), so aliases are
    judged on contexts the stage could draw.
    """
    blocks = draw_blocks(space, component, options, probes, [*(seed if isinstance(seed, (list, tuple)) else [seed]), 7919],
                         backbone)
    keys = {o: tuple(build_key(b["designs"][o], backbone) for b in blocks) for o in options}
    representative: dict[str, str] = {}
    for option in options:
        representative[option] = next((r for r in representative.values() if r == representative.get(r) and keys[r] == keys[option]),
                                      option)
    return representative


def _feasible(design: Design, backbone: BackboneSpec) -> bool:
    try:
        resolve(design, backbone)
    except DesignError:
        return False
    return True
