"""A racing stage of a discovery: paired blocks in one sweep study, looked at as they finish.

The stage draws ``max_blocks`` blocks (``peftspace.design.blocks``) of its distinct options (aliases
merged), queues every block's designs in one sweep study ``NAME/<stage>`` (a design that two options
of a block share is trained once and counts for both; ``replicates`` seeds each), and lets workers
take them in block order. Whenever blocks finish, the race is replayed from the store
(``peftspace.analysis.racing.replay``: deterministic, so a restarted or distributed discovery makes
the same looks) and the waiting trials of eliminated options are cancelled; once the race stops,
everything still waiting is cancelled. Decisions read the **validation** error only; test errors
are reported for the survivors.
"""

from __future__ import annotations

import math
import time

import numpy as np

from peftspace.sweep.store import SweepError

LOOK_INTERVAL_S = 3.0


def race_stage(ctx, entry: dict, space, component: str, options: list[str], label: str, index: int, plan) -> str:
    """Run (or resume) one racing stage; fills ``entry`` and returns ``"done"`` or ``"waiting"``."""
    from peftspace.design.blocks import build_key, draw_blocks, find_aliases
    from peftspace.design.errors import DesignError
    from peftspace.sweep.status import cancel_waiting, design_outcomes
    from peftspace.sweep.sweep import queue_sweep, run_local_workers

    try:
        aliases = find_aliases(space, component, options, ctx.backbone, seed=[ctx.seed, index])
        distinct = [o for o in options if aliases[o] == o]
        blocks = draw_blocks(space, component, distinct, plan.max_blocks, [ctx.seed, index], ctx.backbone)
    except DesignError as error:
        raise SweepError(f"stage {label}: {error}") from None
    entry.update(protocol="racing", plan=plan.to_dict(), replicates=ctx.replicates,
                 aliases={o: r for o, r in aliases.items() if o != r}, raced=distinct)
    if len(distinct) == 1:
        entry.update(race=None, winner=distinct[0], verdict="decided", trials={"used": 0},
                     why=f"every option builds the same designs as {distinct[0]!r} on this backbone")
        return "done"

    designs, extras = [], []
    for block in blocks:
        shared: dict[str, list[str]] = {}
        for option in distinct:
            shared.setdefault(build_key(block["designs"][option], ctx.backbone), []).append(option)
        for group in shared.values():
            for replicate in range(ctx.replicates):
                designs.append(block["designs"][group[0]])
                extras.append({"block": block["block"], "options": group, "replicate": replicate,
                               "seed": block["seed"] + replicate})
    study = f"{ctx.name}/{label}"
    queue_sweep(space, ctx.model, ctx.tasks, len(designs), ctx.seed, ctx.url, study, ctx.schedule, heartbeat=ctx.heartbeat,
                designs=designs, extras=extras)
    entry["study"] = study
    ctx.save()

    def advance():
        outcomes = design_outcomes(ctx.url, study)
        state = replay_outcomes(outcomes, distinct, plan)
        alive = set(state.survivors) if not state.done else set()
        idle = [o["design_index"] for o in outcomes if o["state"] == "waiting" and not alive & set(o.get("options") or ())]
        if idle:
            cancel_waiting(ctx.url, study, idle, "its options were eliminated" if not state.done else "the race has stopped")
        return state, outcomes

    last = [0.0]

    def progress(counts):
        if time.monotonic() - last[0] >= LOOK_INTERVAL_S:
            last[0] = time.monotonic()
            state, _ = advance()
            entry["race"] = state.to_dict()
            ctx.save()
            ctx.show(label, counts, state)

    state, outcomes = advance()
    if not state.done:
        run_local_workers(ctx.url, [study], ctx.data_dir, ctx.workers, ctx.threads, progress, device=ctx.device)
        state, outcomes = advance()
        while not state.done and ctx.wait and _pending(outcomes):  # workers elsewhere (workers=0)
            time.sleep(LOOK_INTERVAL_S)
            state, outcomes = advance()
            ctx.show(label, _counts(outcomes), state)
    entry["race"] = state.to_dict()
    entry["trials"] = _trial_counts(outcomes)
    if not state.done:
        if _pending(outcomes):
            return "waiting"
        raise SweepError(f"stage {label}: the race needs block(s) up to {state.blocks_needed} but nothing is queued; "
                         f"see peftspace status --storage URL --study {study}")
    entry.update(winner=state.winner, verdict=state.status, why=state.winner_rule,
                 test=_test_means(outcomes, state.survivors), fidelity=fidelity(outcomes))
    return "done"


def replay_outcomes(outcomes: list[dict], options: list[str], plan):
    """The race's state from a stage study's ``design_outcomes``: cell (block, option) = mean validation error of its
    replicates; a failed replicate makes the cell failed; unfinished cells are NaN."""
    from peftspace.analysis.racing import replay

    column = {o: i for i, o in enumerate(options)}
    cells: dict[tuple[int, int], list] = {}
    for row in outcomes:
        for option in row.get("options") or ():
            if option in column and row.get("block") is not None:
                cells.setdefault((row["block"], column[option]), []).append(row)
    errors = np.full((plan.max_blocks, len(options)), np.nan)
    failed = np.zeros(errors.shape, dtype=bool)
    for (block, col), rows in cells.items():
        states = {r["state"] for r in rows}
        if "failed" in states:
            failed[block, col] = True
        elif states == {"complete"}:
            values = [_validation_error(r) for r in rows]
            errors[block, col] = float(np.mean(values))
    return replay(errors, options, plan, failed)


def _validation_error(row: dict) -> float:
    value = row.get("validation_error")
    if value is None or not math.isfinite(value):
        raise SweepError(f"trial {row.get('trial')} of design {row['design_index']} has no validation error; racing decides "
                         f"on the validation split, so the schedule must score it (not --test-only)")
    return float(value)


def _pending(outcomes) -> bool:
    return any(o["state"] in ("waiting", "running") for o in outcomes)


def _counts(outcomes) -> dict:
    counts = {s: 0 for s in ("complete", "failed", "running", "waiting", "cancelled")}
    for row in outcomes:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    counts["total"] = len(outcomes)
    return counts


def _trial_counts(outcomes) -> dict:
    counts = _counts(outcomes)
    return {**counts, "used": counts["complete"] + counts["failed"]}


def _test_means(outcomes, survivors) -> dict:
    """Mean test error of each survivor over its complete trials (reported, never decided on)."""
    found: dict[str, list[float]] = {}
    for row in outcomes:
        if row["state"] == "complete" and row.get("error") is not None:
            for option in row.get("options") or ():
                if option in survivors:
                    found.setdefault(option, []).append(row["error"])
    return {o: {"mean": float(np.mean(v)), "n": len(v)} for o, v in found.items()}


def fidelity(outcomes) -> dict | None:
    """Spearman correlation of the mid-training and final validation errors of the stage's complete trials."""
    from scipy import stats

    pairs = [(r["mid_validation_error"], r["validation_error"]) for r in outcomes if r["state"] == "complete"
             and r.get("mid_validation_error") is not None and r.get("validation_error") is not None]
    if len(pairs) < 3 or len({p[0] for p in pairs}) < 2 or len({p[1] for p in pairs}) < 2:
        return None
    rho = float(stats.spearmanr(*zip(*pairs)).statistic)
    return {"spearman_mid_final": rho, "n": len(pairs), "warning": rho < 0.8}
