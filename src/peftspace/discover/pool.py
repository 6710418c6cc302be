"""The strategy stage of a racing discovery: balanced pools, per-group effects fits, a final race.

Instead of the paper's greedy 4 groups x 15 subspaces, the stage trains a pool of designs of the
space whose per-group strategy subsets are balanced (``peftspace.design.pool``), fits the additive
effects of "method m in group g" on their validation errors with robust standard errors
(``peftspace.analysis.effects``; failed designs at their block's worst error), then (``narrow``, the
default) a second balanced pool over each group's few best predicted subsets, fitted with a dummy
per (group, subset) so that what a subset does beyond its methods is seen, and races the two best
predicted assignments and the recalled T5-base S4 assignment on paired blocks
(``peftspace.discover.racing``). The winner fixes the assignment.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from peftspace.sweep.store import SweepError

POOL_BLOCK = 8  # pool designs per block (benchmarks/pool_sim.py: blocks of 4 to 20 do equally well)


def _feasible(design, backbone) -> bool:
    from peftspace.design.allocation import resolve
    from peftspace.design.errors import DesignError

    try:
        resolve(design, backbone)
    except DesignError:
        return False
    return True


def pool_split(pool_size: int, narrow: int) -> tuple[int, int]:
    """The designs of the first (all candidate subsets) and the second (narrowed) pool.

    About half to each, the first in whole blocks (``benchmarks/pool_sim.py``: 96 + 88 narrowed to 3
    subsets per group and a 5-block final race, 199 trials, beat one pool of 140 and a 20-block race);
    one pool when ``narrow`` is 0 or the pool is under 80 designs (too few for the first fit's 21
    columns and its blocks).
    """
    if not narrow or pool_size < 80:
        return pool_size, 0
    first = round(0.52 * pool_size / POOL_BLOCK) * POOL_BLOCK
    return first, pool_size - first


def pool_stage(ctx, entry: dict, space, label: str, index: int, plan, pool_size: int, candidates: tuple[str, ...],
               narrow: int = 0):
    """Run (or resume) the pool(s) and the final race; returns ``(state, narrowed space)``.

    With ``narrow``, the pool is split (:func:`pool_split`): the first pool's effects fit keeps each
    group's ``narrow`` best predicted subsets, a second balanced pool over them is fitted with a dummy
    per (group, subset), and the finalists come from that second fit.
    """
    from peftspace.analysis.effects import SUBSETS, best_assignments, narrowed_subsets
    from peftspace.design.design import canonical_subset
    from peftspace.design.space import RECALLED_S4, allowed_subsets
    from peftspace.discover.racing import race_stage

    groups = space.num_groups
    allowed = [set(canonical_subset(s) for s in a) for a in allowed_subsets(space)]
    pool_subsets = tuple(dict.fromkeys(canonical_subset(c) for c in candidates if all(canonical_subset(c) in a for a in allowed)))
    if len(pool_subsets) < 2:
        raise SweepError(f"stage {label}: fewer than two candidate subsets {list(candidates)} are allowed in every group")
    first, second = pool_split(pool_size, narrow if len(pool_subsets) > 2 else 0)
    study = f"{ctx.name}/{label}/pool"
    pool_studies = [study]
    entry.update(protocol="racing", pool={"study": study, "size": first, "subsets": list(pool_subsets)}, studies=[study])
    read = _run_pool(ctx, space, label, study, pool_subsets, first, np.random.default_rng([ctx.seed, index]), "pool")
    if read is None:
        return "waiting", space
    fit, failed, trained = _fit(label, groups, read)
    entry["pool"].update(failed=failed, fit=fit.to_dict())
    levels = pool_subsets
    if second:
        levels = narrowed_subsets(fit, pool_subsets, keep=min(narrow, len(pool_subsets)))
        study2 = f"{ctx.name}/{label}/pool2"
        entry["pool"]["second"] = {"study": study2, "size": second, "subsets": [list(g) for g in levels]}
        pool_studies.append(study2)
        entry["studies"] = list(pool_studies)
        read = _run_pool(ctx, space, label, study2, levels, second, np.random.default_rng([ctx.seed, index, 2]), "pool 2")
        if read is None:
            return "waiting", space
        fit, failed, more = _fit(label, groups, read, terms=SUBSETS, levels=levels)
        entry["pool"]["second"].update(failed=failed, fit=fit.to_dict())
        trained += more
    try:
        ranked = best_assignments(fit, levels, top=2)
    except ValueError as error:
        raise SweepError(f"stage {label}: the effects fit failed: {error}") from None
    finalists = [",".join(a) for a, _ in ranked]
    recalled = ",".join(RECALLED_S4)
    if groups == len(RECALLED_S4) and all(s in a for s, a in zip(RECALLED_S4, allowed)) and recalled not in finalists:
        finalists.append(recalled)
    entry["pool"]["predicted"] = [{"assignment": ",".join(a), "error": float(p)} for a, p in ranked]
    entry["options"] = {f: {"assignment": f.split(",")} for f in finalists}
    race = {}
    state = race_stage(ctx, race, space, "assignment", finalists, f"{label}.final", index + 100, plan)
    entry.update({k: v for k, v in race.items() if k not in ("protocol",)})
    if "trials" in entry:  # the stage's trials: the pools' and the final race's
        entry["trials"] = {**entry["trials"], "pool": trained, "used": entry["trials"]["used"] + trained}
    if "study" in race:
        entry["studies"] = [*pool_studies, race["study"]]
    if state != "done":
        return state, space
    return "done", space.restrict(label, assignment=tuple(entry["winner"].split(",")), group_subsets=None)


def _run_pool(ctx, space, label: str, study: str, subsets, size: int, rng: np.random.Generator, title: str):
    """Queue (or find) one balanced pool of ``size`` designs in blocks of POOL_BLOCK, run the local workers, and
    return the outcomes of its finished designs, or None while designs are still waiting or running."""
    from peftspace.design.pool import balanced_assignments
    from peftspace.design.space import draw
    from peftspace.sweep.status import design_outcomes
    from peftspace.sweep.sweep import queue_sweep, run_local_workers

    assignments = balanced_assignments(space.num_groups, size, rng, subsets)
    designs, extras = [], []
    # Blocks of POOL_BLOCK designs share one context (the other components and the seed), fitted as block
    # effects: simulated, this took the chance of an assignment within delta of the best from 0.13 to 0.89.
    for start in range(0, len(assignments), POOL_BLOCK):
        chunk = assignments[start:start + POOL_BLOCK]
        for _ in range(200):
            context = draw(space, ctx.backbone.num_layers, rng)
            built = [replace(context, strategies=tuple(a)) for a in chunk]
            if all(_feasible(d, ctx.backbone) for d in built):
                break
        else:
            raise SweepError(f"stage {label}: no context is feasible for every assignment of {title} block {start // POOL_BLOCK}")
        seed = int(rng.integers(2 ** 31))
        for number, (assignment, design) in enumerate(zip(chunk, built), start=start):
            designs.append(design)
            extras.append({"pool": number, "block": start // POOL_BLOCK, "assignment": ",".join(assignment), "seed": seed})
    queue_sweep(space, ctx.model, ctx.tasks, len(designs), ctx.seed, ctx.url, study, ctx.schedule, heartbeat=ctx.heartbeat,
                designs=designs, extras=extras)
    run_local_workers(ctx.url, [study], ctx.data_dir, ctx.workers, ctx.threads,
                      None if ctx.progress is None else lambda counts: ctx.show(f"{label} {title}", counts), device=ctx.device)
    outcomes = design_outcomes(ctx.url, study)
    if any(o["state"] in ("waiting", "running") for o in outcomes):
        return None
    done = [o for o in outcomes if o["state"] in ("complete", "failed")]
    if len(done) < 10:
        raise SweepError(f"stage {label}: only {len(done)} {title} designs finished; see peftspace status --study {study}")
    return done


def _fit(label: str, groups: int, done: list[dict], **fit_options):
    """The effects fit of a finished pool (failed designs at their block's worst error): ``(fit, failed, trained)``."""
    from peftspace.analysis.effects import fill_pool_failures, fit_effects

    failed = np.array([o["state"] == "failed" for o in done])
    blocks = [o["block"] for o in done]
    errors = fill_pool_failures([math.nan if f else o["validation_error"] for o, f in zip(done, failed)], failed, blocks)
    assignments = [tuple(o["assignment"].split(",")) for o in done]
    try:
        fit = fit_effects(errors, assignments, groups, blocks if len(set(blocks)) > 1 else None, **fit_options)
    except ValueError as error:
        raise SweepError(f"stage {label}: the effects fit failed: {error}") from None
    return fit, int(failed.sum()), len(done)
