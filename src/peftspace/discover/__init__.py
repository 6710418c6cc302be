"""Stage-wise discovery (S0 -> S1 -> ... -> S4): compare one component's options, keep the best, go on.

Two protocols. ``racing`` (the default): each stage races its distinct options on paired blocks
(``peftspace.discover.racing``, ``peftspace.analysis.racing``), with the family-wise error rate of
eliminations controlled, and decides on validation errors; the strategy stage trains one balanced
pool, fits per-group method effects and races the best predicted assignments
(``peftspace.discover.pool``). ``paper``: the paper's fixed-N protocol described below, kept for
fidelity.

Each stage takes the space the previous stage left and one component of it: grouping (the five
patterns), allocation (three rules), tuned groups (all, or any subset), then strategies, greedily
group by group (for group 1, one subspace per candidate subset with the later groups left free; its
winner is fixed before group 2, and so on). For every option, ``samples_per_space`` designs of its
subspace (all of them, when the subspace holds fewer) are trained as one sweep, and the options are
ranked by mean error with a bootstrap verdict (``peftspace.analysis.rank_options``). The best mean
carries forward even when the verdict is *undecided*; the log says so.

Everything lives in one Optuna storage: a sweep study per option (``NAME/S1/grouping=spindle``) and
a trial-less study ``NAME`` whose user attr ``peftspace_discovery`` is the decision log. Re-running
the same discovery resumes it: finished trials are read back, never re-run, and the rankings are
recomputed from them with the same seeded bootstrap, so the same decisions come out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from peftspace.design.space import ALL_SUBSETS, DesignSpace, component_subspaces, space_size
from peftspace.sweep.store import Heartbeat, SweepError, differing, open_storage, redact, retrying, safe_name, storage_url, stored_schedule

COMPONENTS = ("grouping", "allocation", "tuned", "strategies")
TITLES = {"grouping": "layer grouping", "allocation": "parameter allocation", "tuned": "tunable groups"}
DISCOVERY_ATTR = "peftspace_discovery"
DEFINITION_KEYS = ("model", "tasks", "samples_per_space", "seed", "schedule", "start", "components", "candidates", "confidence",
                   "protocol", "plan", "replicates", "pool_size", "narrow", "final_blocks", "max_trials",
                   "fidelity_check", "task_files")


def run_discovery(model: str, tasks, samples_per_space: int, *, start: DesignSpace | str = "S0",
                  stages=COMPONENTS, candidates=ALL_SUBSETS, name: str | None = None, storage: str | None = None,
                  out_dir=None, seed: int = 0, schedule=None, data_dir=None, workers: int = 1, threads: int | None = None,
                  confidence: float = 0.95, heartbeat: Heartbeat = Heartbeat(), progress=None, protocol: str = "racing",
                  plan=None, replicates: int = 1, pool_size: int = 184, narrow: int = 3, final_blocks: int = 5,
                  max_trials: int | None = None,
                  wait: bool = False, lora_scaling: str | None = None, mid_validation: bool | None = None,
                  fidelity_check: int = 0, device: str = "auto") -> dict:
    """Run (or resume) a discovery and return its decision log.

    Args:
        model: the backbone (path, hub id or alias such as ``"minilm"``).
        tasks: task names (list or comma-separated); a design's error is 100 - its mean task score.
        samples_per_space: designs trained per option subspace (fewer when the subspace is smaller).
        start: the space the first stage narrows (built-in name, file or ``DesignSpace``).
        stages: components in order, from ``COMPONENTS``; ``strategies`` runs one stage per group.
        candidates: the strategy subsets compared per group (default all 15; fewer is cheaper).
        name: the discovery's name (default ``discover-<model>-<tasks>``); its studies are ``NAME/...``.
        storage: Optuna storage URL; default ``sqlite:///runs/<name>.db``.
        out_dir: where ``decisions.json`` and the discovered design ``<name>.yaml`` go (default ``runs/<name>``).
        seed, schedule, data_dir, workers, threads, heartbeat, device: as for ``run_sweep``; every sweep of the
            discovery uses the same seed, so every design sees the same data splits.
        confidence: of the verdicts' bootstrap intervals.
        progress: called with ``(stage label, summed design counts)`` about once a second (racing: and the race's state).
        protocol: ``"racing"`` (paired blocks, error-controlled eliminations, validation errors) or ``"paper"``
            (``samples_per_space`` unpaired designs per option, ranked by mean validation error).
        plan: the races' ``RacePlan`` (alpha, delta, max_blocks, looks); default ``RacePlan()``.
        replicates: seeds per design in a race (its error is their mean).
        pool_size: designs in the strategy stage's pools together (racing).
        narrow: subsets kept per group for the strategy stage's second pool (0: one pool; see
            ``peftspace.discover.pool``).
        final_blocks: with ``narrow``, the most blocks of the strategy stage's final race (simulated, trials
            spent on the pools choose better than trials spent racing the finalists).
        max_trials: a cap on the trials of the whole discovery (racing): each stage's races get at most an
            equal share of what is left, as blocks of their options.
        wait: with ``workers=0``, wait for workers elsewhere instead of returning ``"waiting"``.
        lora_scaling: LoRA's scaling in the start space (racing default ``"rslora"``, alpha / sqrt(r): the
            allocation stage changes LoRA ranks per layer, and under alpha / r a rank would also change
            LoRA's effective step size); None keeps the start space's (paper default).
        mid_validation: trials also score the validation split at their midpoint (racing default True), for
            the per-stage fidelity correlation.
        fidelity_check: re-train this many designs with a 3x longer schedule at the end and report the rank
            correlation of short and long validation errors (``peftspace.discover.fidelity``).

    A stage whose designs are still waiting or running after the local workers stop (``workers=0``,
    or workers elsewhere still busy) ends the call with the log's ``status`` ``"waiting"``: start
    workers on its studies (``peftspace worker --study 'NAME/S1/*'``), then call again to go on.

    Raises:
        SweepError: bad arguments, a store holding a different discovery under this name, or a stage in
            which no design finished (its failures are in the store: see ``peftspace status``).
    """
    from peftspace.analysis import rank_options
    from peftspace.families import backbone_spec
    from peftspace.models import load_config
    from peftspace.sweep.status import finished_trials
    from peftspace.sweep.sweep import check_data_dir, design_totals, resolve_space, run_local_workers
    from peftspace.tasks.task_file import resolve_tasks, stored_task_files, task_names
    from peftspace.schedule import Schedule

    from peftspace.analysis.racing import RacePlan

    from peftspace.devices import worker_slots

    worker_slots(workers, device, threads)  # a CUDA request without CUDA fails before anything is queued
    space, tasks, schedule = resolve_space(start), resolve_tasks(tasks), schedule or Schedule()
    if protocol not in PROTOCOLS:
        raise SweepError(f"protocol={protocol!r} must be one of {list(PROTOCOLS)}")
    try:
        plan = plan if isinstance(plan, RacePlan) else RacePlan(**(plan or {}))
    except (TypeError, ValueError) as error:
        raise SweepError(f"{error}") from None
    for key, value, least in (("replicates", replicates, 1), ("pool_size", pool_size, 8), ("narrow", narrow, 0),
                              ("final_blocks", final_blocks, 2)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise SweepError(f"{key}={value!r} must be an integer >= {least}")
    if max_trials is not None and (not isinstance(max_trials, int) or max_trials < 1):
        raise SweepError(f"max_trials={max_trials!r} must be a positive integer")
    if protocol == "racing" and not schedule.score_validation:
        raise SweepError("the racing protocol decides on the validation split: drop --test-only (score_validation=False)")
    if not isinstance(fidelity_check, int) or isinstance(fidelity_check, bool) or fidelity_check < 0:
        raise SweepError(f"fidelity_check={fidelity_check!r} must be an integer >= 0 (0: no check)")
    if protocol == "racing":
        lora_scaling = lora_scaling or "rslora"
        schedule = replace(schedule, mid_validation=True if mid_validation is None else mid_validation)
    elif mid_validation:
        schedule = replace(schedule, mid_validation=True)
    if lora_scaling is not None:
        from peftspace.design.options import LORA_SCALINGS

        if lora_scaling not in LORA_SCALINGS:
            raise SweepError(f"lora_scaling={lora_scaling!r} must be one of {list(LORA_SCALINGS)}")
        space = space.restrict(space.name, options=replace(space.options, lora_scaling=lora_scaling))
    stages = tuple(stages.split(",") if isinstance(stages, str) else stages)
    unknown = [s for s in stages if s not in COMPONENTS]
    if unknown or not stages or len(set(stages)) != len(stages):
        raise SweepError(f"stages {list(stages)} must be distinct components from {list(COMPONENTS)}")
    if not isinstance(samples_per_space, int) or samples_per_space < 2:
        raise SweepError(f"samples_per_space={samples_per_space!r} must be an integer >= 2 (a ranking needs two errors per option)")
    check_data_dir(data_dir)
    name = safe_name(name or f"discover-{Path(model).name}-{'+'.join(task_names(tasks))}")
    url = storage_url(storage, name)
    out = Path(out_dir or Path("runs") / name)
    backbone = backbone_spec(load_config(model))
    definition = {"model": model, "tasks": task_names(tasks), "samples_per_space": samples_per_space, "seed": seed,
                  "schedule": schedule.to_dict(), "start": space.to_dict(), "components": list(stages),
                  "candidates": list(candidates), "confidence": confidence}
    task_files = stored_task_files(tasks)
    if task_files:  # stored only with task files, so discoveries stored before them resume
        definition["task_files"] = task_files
    if protocol == "racing":  # stored only for racing, so paper discoveries stored before it resume
        definition.update(protocol=protocol, plan=plan.to_dict(), replicates=replicates, pool_size=pool_size,
                          max_trials=max_trials, fidelity_check=fidelity_check)
        if narrow:  # stored only when narrowing, so one-pool discoveries stored before it resume with narrow=0
            definition.update(narrow=narrow, final_blocks=final_blocks)
    log_study = _discovery_study(url, name, definition)
    log = {"name": name, **definition, "stages": [], "final_space": None, "final_design": None, "best": None, "status": "running"}

    if protocol == "racing":
        from peftspace.discover.pool import pool_stage
        from peftspace.discover.racing import race_stage

        ctx = _Context(model, tasks, url, name, seed, schedule, data_dir, workers, threads, heartbeat, backbone, replicates,
                       wait, progress, lambda: _save(log_study, log), device)
        for index, component in enumerate(stages):
            label = f"S{index + 1}"
            entry = {"stage": label, "component": component, "title": TITLES.get(component, "strategy assignment"),
                     "options": {}, "winner": None, "verdict": None, "space": None, "status": "running"}
            log["stages"].append(entry)
            _save(log_study, log)
            stage_plan = _budgeted(plan, max_trials, log, len(stages) - index, ctx.replicates)
            if component == "strategies":
                pool, stage_plan = _pool_budget(plan, max_trials, log, len(stages) - index, ctx.replicates, pool_size,
                                                final_blocks if narrow else None)
                state, space = pool_stage(ctx, entry, space, label, index, stage_plan, pool, tuple(candidates), narrow)
            else:
                options = component_subspaces(space, component)
                entry["options"] = {o: {"space": sub.to_dict()} for o, sub in options.items()}
                state = race_stage(ctx, entry, space, component, list(options), label, index, stage_plan)
                if state == "done":
                    space = options[entry["winner"]].restrict(label)
            if state == "waiting":
                entry["status"] = log["status"] = "waiting"
                _save(log_study, log)
                return log
            entry["space"], entry["status"] = space.to_dict(), "done"
            _save(log_study, log)
        log["final_space"] = space.to_dict()
        log["final_design"], log["final_rule"], log["best"] = _raced_final_design(url, log, space, backbone)
        if fidelity_check:
            from peftspace.discover.fidelity import fidelity_check as check

            log["fidelity_result"], state = check(ctx, log, fidelity_check)
            if state == "waiting":
                log["status"] = "waiting"
                _save(log_study, log)
                return log
        log["status"] = "done"
        _save(log_study, log)
        _write_outputs(out, log)
        return log

    for index, (label, component, group) in enumerate(_stage_plan(stages, space.num_groups)):
        options = component_subspaces(space, component, group=group, candidates=tuple(candidates))
        entry = {"stage": label, "component": component if group is None else f"strategies[{group}]",
                 "title": TITLES.get(component) or f"strategies of group {group + 1}", "options": {}, "ranking": None,
                 "winner": None, "verdict": None, "space": None, "status": "running", "protocol": "paper"}
        log["stages"].append(entry)
        studies = []
        for option, subspace in options.items():
            study, designs = _queue_option(subspace, name, label, entry["component"], option, model, tasks, samples_per_space,
                                           seed, url, schedule, heartbeat, backbone)
            entry["options"][option] = {"study": study, "space": subspace.to_dict(), "designs": designs}
            studies += [study] if study else []
        _save(log_study, log)
        run_local_workers(url, studies, data_dir, workers, threads,
                          None if progress is None else lambda counts, label=label: progress(label, counts), device=device)
        pending = design_totals(url, studies)
        if pending["waiting"] + pending["running"]:  # trained by workers elsewhere (or none: workers=0)
            entry["status"] = log["status"] = "waiting"
            _save(log_study, log)
            return log
        errors, split = _option_errors(url, entry["options"], schedule.score_validation)
        entry["decided_on"] = split
        entry.update(_decide(errors, confidence, np.random.default_rng([seed, index]), rank_options))
        if entry["winner"] is None:
            _save(log_study, log)
            raise SweepError(f"stage {label} ({entry['title']}): no design of any option finished; the failures are in "
                             f"{redact(url)} (peftspace status --storage URL --study {name}/{label}/...)")
        space = options[entry["winner"]].restrict(label)
        entry["space"], entry["status"] = space.to_dict(), "done"
        _save(log_study, log)

    log["final_space"] = space.to_dict()
    log["best"] = _best(url, [info["study"] for entry in log["stages"] for info in entry["options"].values() if info["study"]])
    log["final_design"], log["final_rule"] = _final_design(url, log, space, backbone)
    log["status"] = "done"
    _save(log_study, log)
    _write_outputs(out, log)
    return log


PROTOCOLS = ("racing", "paper")


@dataclass(frozen=True)
class _Context:
    """What every stage of one discovery shares."""

    model: str
    tasks: list
    url: str
    name: str
    seed: int
    schedule: object
    data_dir: object
    workers: int
    threads: int | None
    heartbeat: Heartbeat
    backbone: object
    replicates: int
    wait: bool
    progress: object
    save: object  # stores the log as it stands (a running stage's study and race are visible to report and status)
    device: str = "auto"  # the local workers' (not a property of the discovery: ``peftspace.devices``)

    def show(self, label: str, counts: dict, state=None) -> None:
        if self.progress is not None:
            self.progress(label, counts, state) if _takes_state(self.progress) else self.progress(label, counts)


def _takes_state(progress) -> bool:
    import inspect

    try:
        return len(inspect.signature(progress).parameters) >= 3
    except (TypeError, ValueError):
        return False


def _share(max_trials: int, log: dict, stages_left: int) -> int:
    """This stage's equal share of the trials ``max_trials`` leaves after the stages before it."""
    used = sum((e.get("trials") or {}).get("used", 0) for e in log["stages"])
    return max(0, max_trials - used) // max(1, stages_left)


def _capped(plan, blocks: int):
    blocks = max(2, min(plan.max_blocks, blocks))
    return replace(plan, max_blocks=blocks, first_look=min(plan.first_look, blocks))


def _budgeted(plan, max_trials, log, stages_left: int, replicates: int):
    """The plan of the next stage under ``max_trials``: at most an equal share of the trials left, as blocks.

    A stage's share is divided by its options when it races (5 groupings, 3 allocations, 2 tuned
    choices; the pool stage's final race takes 3 assignments), so ``max_blocks`` is that many blocks.
    """
    if max_trials is None:
        return plan
    options = {"grouping": 5, "allocation": 3, "tuned": 2}.get(log["stages"][-1]["component"], 3)
    return _capped(plan, _share(max_trials, log, stages_left) // (options * replicates))


def _pool_budget(plan, max_trials, log, stages_left: int, replicates: int, pool_size: int, final_blocks: int | None = None):
    """The strategy stage's pool size and final-race plan under ``max_trials``.

    One pool (``final_blocks`` None): 70 % of the stage's share for the pool (at least 32 designs), the rest for
    the race among 3 assignments. Two pools (``final_blocks``, with ``narrow``): the race takes at most
    ``final_blocks`` blocks of 3, the pools everything else (at least 32 designs; simulated, pool designs choose
    better than race blocks)."""
    if max_trials is None:
        return pool_size, plan if final_blocks is None else _capped(plan, final_blocks)
    share = _share(max_trials, log, stages_left)
    if final_blocks is None:
        pool = max(32, min(pool_size, int(0.7 * share)))
        return pool, _capped(plan, (share - pool) // (3 * replicates))
    race = min(final_blocks, max(2, share // 10 // (3 * replicates)))  # a small share still races a little
    pool = max(32, min(pool_size, share - 3 * race * replicates))
    return pool, _capped(plan, min(race, max(2, (share - pool) // (3 * replicates))))


def _option_errors(url: str, options: dict, validation: bool) -> tuple[dict[str, list[float]], str]:
    """The paper protocol's errors per option: validation errors (test ones only under --test-only), failed
    designs counted at the worst error of the stage."""
    from peftspace.sweep.status import design_outcomes

    key = "validation_error" if validation else "error"
    found, failed = {}, {}
    for option, info in options.items():
        rows = design_outcomes(url, info["study"]) if info["study"] else []
        info["finished"] = sum(r["state"] == "complete" for r in rows)
        info["failed"] = sum(r["state"] == "failed" for r in rows)
        found[option] = [r[key] for r in rows if r["state"] == "complete" and r.get(key) is not None]
        failed[option] = info["failed"]
    values = [v for errors in found.values() for v in errors]
    worst = max(values) if values else 100.0
    return {o: errors + [worst] * failed[o] for o, errors in found.items()}, ("validation" if validation else "test")


def _raced_final_design(url: str, log: dict, space, backbone):
    """The discovered design and the best trained design, both chosen by validation error; their test errors reported."""
    from peftspace.design import Design
    from peftspace.design.space import sample_up_to
    from peftspace.sweep.status import design_outcomes

    rows = []
    for entry in log["stages"]:
        for study in dict.fromkeys([entry.get("study"), *(entry.get("studies") or [])]):
            if study:
                rows += [{"study": study, **r} for r in design_outcomes(url, study)
                         if r["state"] == "complete" and r.get("validation_error") is not None]
    best = min(rows, key=lambda r: (r["validation_error"], r["study"], r["design_index"])) if rows else None
    if best is not None:
        best = {k: best.get(k) for k in ("study", "trial", "design_index", "validation_error", "error", "design", "scores",
                                         "validation_scores", "trainable")}
    if space_size(space, backbone.num_layers) == 1:
        [design] = sample_up_to(space, 1, log["seed"], backbone)
        rule = "the final space holds exactly one design"
    else:
        last = log["stages"][-1]
        mine = [r for r in rows if r["study"] == last.get("study") and last["winner"] in (r.get("options") or ())]
        if not mine:
            return None, "no design of the last stage's winner finished", best
        chosen = min(mine, key=lambda r: (r["validation_error"], r["design_index"]))
        # a design shared by two options of a block was built for the first: give it the winner's value (same build)
        design = _with_winner(Design.from_dict(chosen["design"]), last["component"], last["winner"], space.num_groups)
        rule = "the lowest validation error among the last stage's winner's designs (the final space holds several)"
        log["final_errors"] = {"validation": chosen["validation_error"], "test": chosen["error"], "study": chosen["study"],
                               "trial": chosen["trial"]}  # the test error is reported, never chosen by
    tasks = ", ".join(log["tasks"])
    design = Design.from_dict({**design.to_dict(), "name": log["name"],
                               "description": f"Discovered by peftspace discover (racing) on {log['model']} ({tasks}); "
                                              f"stages {' -> '.join(e['stage'] for e in log['stages'])}; {rule}."})
    return design.to_dict(), rule, best


def _with_winner(design, component: str, winner: str, num_groups: int):
    """``design`` with a stage's compared component set to its winner (``tuned`` keeps the design's own draw)."""
    from peftspace.design.blocks import instantiate

    block_component = {"strategies": "assignment"}.get(component, component)
    return design if block_component == "tuned" else instantiate(design, block_component, winner, num_groups, 0)


def _stage_plan(stages, num_groups: int) -> list[tuple[str, str, int | None]]:
    """(label, component, group) per stage: S1, S2, ... with one S<k>.G<g> stage per group for strategies."""
    plan = []
    for number, component in enumerate(stages, start=1):
        if component == "strategies":
            plan.extend((f"S{number}.G{g + 1}", component, g) for g in range(num_groups))
        else:
            plan.append((f"S{number}", component, None))
    return plan


def _queue_option(subspace, name, label, component, option, model, tasks, samples, seed, url, schedule, heartbeat, backbone):
    """Queue the sweep of one option; returns (study name, design count), or (None, 0) when it holds no feasible design."""
    from peftspace.design.errors import DesignError
    from peftspace.design.space import sample_up_to
    from peftspace.sweep.sweep import queue_sweep

    try:
        count = len(sample_up_to(subspace, samples, seed, backbone))
    except DesignError as error:
        raise SweepError(f"stage {label}, option {option!r}: {error}") from None
    if count == 0:
        return None, 0
    study = f"{name}/{label}/{component}={option}"
    queue_sweep(subspace, model, tasks, count, seed, url, study, schedule, heartbeat=heartbeat)
    return study, count


def _decide(errors: dict[str, list[float]], confidence: float, rng, rank_options) -> dict:
    """The winner of a stage: the ranking's best among options with two or more finished designs."""
    rankable = {option: values for option, values in errors.items() if len(values) >= 2}
    if len(rankable) >= 2:
        ranking = rank_options(rankable, confidence, rng=rng)
        return {"ranking": ranking.to_dict(), "winner": ranking.best, "verdict": ranking.verdict}
    with_data = sorted((float(np.mean(v)), option) for option, v in errors.items() if v)
    if not with_data:
        return {"ranking": None, "winner": None, "verdict": None}
    return {"ranking": None, "winner": with_data[0][1], "verdict": "unranked: fewer than two options have two finished designs"}


def _best(url: str, studies: list[str]) -> dict | None:
    from peftspace.sweep.status import finished_trials

    rows = [{"study": study, **row} for study in studies for row in finished_trials(url, study)]
    if not rows:
        return None
    best = min(rows, key=lambda row: (_selection_error(row), row["study"], row["design_index"]))
    return {k: best.get(k) for k in ("study", "trial", "design_index", "validation_error", "error", "design", "scores",
                                     "trainable")}


def _selection_error(row: dict) -> float:
    """What designs are chosen by: the validation error (the test error only for sweeps run --test-only)."""
    return row["validation_error"] if row.get("validation_error") is not None else row["error"]


def _final_design(url: str, log: dict, space: DesignSpace, backbone) -> tuple[dict | None, str]:
    """The discovered design: the final space's only design, else the best design trained in the last winner's sweep."""
    from peftspace.design import Design
    from peftspace.design.space import sample_up_to
    from peftspace.sweep.status import finished_trials

    if space_size(space, backbone.num_layers) == 1:
        [design] = sample_up_to(space, 1, log["seed"], backbone)
        rule = "the final space holds exactly one design"
    else:
        last = log["stages"][-1]
        rows = finished_trials(url, last["options"][last["winner"]]["study"])
        design = Design.from_dict(min(rows, key=_selection_error)["design"])
        rule = "the best validation-error design trained in the last stage's winning subspace (the final space holds several)"
    tasks = ", ".join(log["tasks"])
    design = Design.from_dict({**design.to_dict(), "name": log["name"],
                               "description": f"Discovered by peftspace discover on {log['model']} ({tasks}); "
                                              f"stages {' -> '.join(e['stage'] for e in log['stages'])}; {rule}."})
    return design.to_dict(), rule


def _discovery_study(url: str, name: str, definition: dict):
    """The trial-less study that holds the log; refuses a store whose discovery ``name`` was defined otherwise."""
    import optuna

    study = retrying(optuna.create_study, storage=open_storage(url), study_name=name, load_if_exists=True)
    stored = study.user_attrs.get(DISCOVERY_ATTR)
    if stored is None:
        if study.get_trials(deepcopy=False) or study.user_attrs:
            raise SweepError(f"study {name!r} in {redact(url)} exists and is not a peftspace discovery; choose another name")
        return study
    given = json.loads(json.dumps(definition))
    # the stored log holds the definition and the results; only the definition's keys are compared
    stored = {k: v for k, v in stored.items() if k in given or k in DEFINITION_KEYS}
    stored["schedule"] = stored_schedule(stored.get("schedule", {}))
    differences = differing(stored, given)
    if differences:
        raise SweepError(f"discovery {name!r} in {redact(url)} was run with other settings, so it cannot be resumed with these "
                         f"(repeat the stored ones, or choose another --name); differences: " + "; ".join(differences))
    return study


def _save(study, log: dict) -> None:
    retrying(study.set_user_attr, DISCOVERY_ATTR, json.loads(json.dumps(log)))


def read_discovery(storage: str, name: str) -> dict:
    """The decision log of discovery ``name`` in ``storage``."""
    from peftspace.sweep.store import load_study

    study = load_study(open_storage(storage), name, storage)
    log = study.user_attrs.get(DISCOVERY_ATTR)
    if log is None:
        raise SweepError(f"study {name!r} in {redact(storage)} is not a peftspace discovery")
    return log


def _write_outputs(out: Path, log: dict) -> None:
    from peftspace.design import Design

    out.mkdir(parents=True, exist_ok=True)
    (out / "decisions.json").write_text(json.dumps(log, indent=2) + "\n")
    if log["final_design"] is not None:
        Design.from_dict(log["final_design"]).save(out / f"{log['name']}.yaml")
