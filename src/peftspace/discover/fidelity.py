"""The fidelity check of a discovery: do its short trials rank designs as longer training would?

``fidelity_check(K)`` re-trains K designs the discovery trained, spread over its range of
validation errors, with a schedule ``factor`` (3) times longer, in the study ``NAME/fidelity``,
and reports the Spearman correlation of their short and long validation errors. Below
``THRESHOLD`` the log and the CLI warn that decisions may depend on the schedule. Each racing stage
also reports the correlation of its trials' midpoint and final validation errors
(``peftspace.discover.racing.fidelity``), which costs nothing extra but speaks of half the schedule.
"""

from __future__ import annotations

from dataclasses import replace

THRESHOLD = 0.8


def pick_spread(rows: list[dict], k: int) -> list[dict]:
    """``k`` rows spread evenly over the sorted validation errors (the best and the worst included)."""
    ordered = sorted(rows, key=lambda r: (r["validation_error"], r["study"], r["design_index"]))
    if k >= len(ordered):
        return ordered
    picks = sorted({round(i * (len(ordered) - 1) / (k - 1)) for i in range(k)}) if k > 1 else [0]
    return [ordered[i] for i in picks]


def fidelity_check(ctx, log: dict, k: int, factor: int = 3) -> tuple[dict, str]:
    """Queue and train the check; returns (its log entry, "done" or "waiting")."""
    from scipy import stats

    from peftspace.design import Design
    from peftspace.design.space import DesignSpace
    from peftspace.sweep.status import design_outcomes
    from peftspace.sweep.sweep import queue_sweep, run_local_workers

    rows = []
    for entry in log["stages"]:
        for study in dict.fromkeys([entry.get("study"), *(entry.get("studies") or [])]):
            if study:
                rows += [{"study": study, **r} for r in design_outcomes(ctx.url, study)
                         if r["state"] == "complete" and r.get("validation_error") is not None]
    unique = {}
    for row in rows:  # a design trained in several stages is checked once
        unique.setdefault(Design.from_dict(row["design"]).to_json(), row)
    chosen = pick_spread(list(unique.values()), k)
    longer = replace(ctx.schedule, max_steps=None if ctx.schedule.max_steps is None else ctx.schedule.max_steps * factor,
                     epochs=ctx.schedule.epochs * factor, mid_validation=False)
    study = f"{ctx.name}/fidelity"
    entry = {"study": study, "factor": factor, "designs": len(chosen), "spearman": None, "warning": None}
    if len(chosen) < 3:
        entry["why"] = f"only {len(chosen)} distinct designs finished; a rank correlation needs 3"
        return entry, "done"
    space = DesignSpace.from_dict(log["final_space"] or log["start"])
    queue_sweep(space, ctx.model, ctx.tasks, len(chosen), ctx.seed, ctx.url, study, longer, heartbeat=ctx.heartbeat,
                designs=[Design.from_dict(r["design"]) for r in chosen],
                extras=[{"seed": r["seed"], "short_study": r["study"], "short_validation_error": r["validation_error"]}
                        for r in chosen])
    run_local_workers(ctx.url, [study], ctx.data_dir, ctx.workers, ctx.threads,
                      None if ctx.progress is None else lambda counts: ctx.show("fidelity", counts), device=ctx.device)
    outcomes = design_outcomes(ctx.url, study)
    if any(o["state"] in ("waiting", "running") for o in outcomes):
        return entry, "waiting"
    pairs = [(o["short_validation_error"], o["validation_error"]) for o in outcomes
             if o["state"] == "complete" and o.get("validation_error") is not None]
    entry["finished"] = len(pairs)
    if len(pairs) >= 3 and len({p[0] for p in pairs}) > 1 and len({p[1] for p in pairs}) > 1:
        rho = float(stats.spearmanr(*zip(*pairs)).statistic)
        entry.update(spearman=rho, warning=rho < THRESHOLD, pairs=[list(p) for p in pairs])
    else:
        entry["why"] = "fewer than 3 re-trained designs with distinct errors finished"
    return entry, "done"
