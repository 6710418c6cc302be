"""The strategy stage of a racing discovery: one balanced pool, a per-group effects fit, a final race.

Instead of the paper's greedy 4 groups x 15 subspaces, the stage trains ``pool_size`` designs of the
space whose per-group strategy subsets are balanced (``peftspace.design.pool``), fits the additive
effects of "method m in group g" on their validation errors with robust standard errors
(``peftspace.analysis.effects``; failed designs at the pool's worst error), and races the two best
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


def pool_stage(ctx, entry: dict, space, label: str, index: int, plan, pool_size: int, candidates: tuple[str, ...]):
    """Run (or resume) the pool and its final race; returns ``(state, narrowed space)``."""
    from peftspace.analysis.effects import best_assignments, fill_pool_failures, fit_effects
    from peftspace.design.design import canonical_subset
    from peftspace.design.pool import balanced_assignments
    from peftspace.design.space import RECALLED_S4, allowed_subsets, draw
    from peftspace.discover.racing import race_stage
    from peftspace.sweep.status import design_outcomes
    from peftspace.sweep.sweep import queue_sweep, run_local_workers

    groups = space.num_groups
    allowed = [set(canonical_subset(s) for s in a) for a in allowed_subsets(space)]
    pool_subsets = tuple(dict.fromkeys(canonical_subset(c) for c in candidates if all(canonical_subset(c) in a for a in allowed)))
    if len(pool_subsets) < 2:
        raise SweepError(f"stage {label}: fewer than two candidate subsets {list(candidates)} are allowed in every group")
    rng = np.random.default_rng([ctx.seed, index])
    assignments = balanced_assignments(groups, pool_size, rng, pool_subsets)
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
            raise SweepError(f"stage {label}: no context is feasible for every assignment of pool block {start // POOL_BLOCK}")
        seed = int(rng.integers(2 ** 31))
        for number, (assignment, design) in enumerate(zip(chunk, built), start=start):
            designs.append(design)
            extras.append({"pool": number, "block": start // POOL_BLOCK, "assignment": ",".join(assignment), "seed": seed})
    study = f"{ctx.name}/{label}/pool"
    queue_sweep(space, ctx.model, ctx.tasks, len(designs), ctx.seed, ctx.url, study, ctx.schedule, heartbeat=ctx.heartbeat,
                designs=designs, extras=extras)
    entry.update(protocol="racing", pool={"study": study, "size": len(designs), "subsets": list(pool_subsets)},
                 studies=[study])
    run_local_workers(ctx.url, [study], ctx.data_dir, ctx.workers, ctx.threads,
                      None if ctx.progress is None else lambda counts: ctx.show(f"{label} pool", counts))
    outcomes = design_outcomes(ctx.url, study)
    if any(o["state"] in ("waiting", "running") for o in outcomes):
        return "waiting", space
    done = [o for o in outcomes if o["state"] in ("complete", "failed")]
    if len(done) < 10:
        raise SweepError(f"stage {label}: only {len(done)} pool designs finished; see peftspace status --study {study}")
    failed = np.array([o["state"] == "failed" for o in done])
    errors = fill_pool_failures([math.nan if f else o["validation_error"] for o, f in zip(done, failed)], failed,
                                [o["block"] for o in done])
    assignments = [tuple(o["assignment"].split(",")) for o in done]
    blocks = [o["block"] for o in done]
    try:
        fit = fit_effects(errors, assignments, groups, blocks if len(set(blocks)) > 1 else None)
        ranked = best_assignments(fit, pool_subsets, top=2)
    except ValueError as error:
        raise SweepError(f"stage {label}: the effects fit failed: {error}") from None
    finalists = [",".join(a) for a, _ in ranked]
    recalled = ",".join(RECALLED_S4)
    if groups == len(RECALLED_S4) and all(s in a for s, a in zip(RECALLED_S4, allowed)) and recalled not in finalists:
        finalists.append(recalled)
    entry["pool"].update(failed=int(failed.sum()), fit=fit.to_dict(),
                         predicted=[{"assignment": ",".join(a), "error": float(p)} for a, p in ranked])
    entry["options"] = {f: {"assignment": f.split(",")} for f in finalists}
    race = {}
    state = race_stage(ctx, race, space, "assignment", finalists, f"{label}.final", index + 100, plan)
    entry.update({k: v for k, v in race.items() if k not in ("protocol",)})
    if "trials" in entry:  # the stage's trials: the pool's and the final race's
        entry["trials"] = {**entry["trials"], "pool": len(done), "used": entry["trials"]["used"] + len(done)}
    if "study" in race:
        entry["studies"] = [study, race["study"]]
    if state != "done":
        return state, space
    return "done", space.restrict(label, assignment=tuple(entry["winner"].split(",")), group_subsets=None)
