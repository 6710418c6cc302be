"""Stage-wise discovery (S0 -> S1 -> ... -> S4): compare one component's options, keep the best, go on.

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
from pathlib import Path

import numpy as np

from peftspace.design.space import ALL_SUBSETS, DesignSpace, component_subspaces, space_size
from peftspace.sweep.store import Heartbeat, SweepError, differing, open_storage, redact, retrying, safe_name, storage_url, stored_schedule

COMPONENTS = ("grouping", "allocation", "tuned", "strategies")
TITLES = {"grouping": "layer grouping", "allocation": "parameter allocation", "tuned": "tunable groups"}
DISCOVERY_ATTR = "peftspace_discovery"


def run_discovery(model: str, tasks, samples_per_space: int, *, start: DesignSpace | str = "S0",
                  stages=COMPONENTS, candidates=ALL_SUBSETS, name: str | None = None, storage: str | None = None,
                  out_dir=None, seed: int = 0, schedule=None, data_dir=None, workers: int = 1, threads: int | None = None,
                  confidence: float = 0.95, heartbeat: Heartbeat = Heartbeat(), progress=None) -> dict:
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
        seed, schedule, data_dir, workers, threads, heartbeat: as for ``run_sweep``; every sweep of the
            discovery uses the same seed, so every design sees the same data splits.
        confidence: of the verdicts' bootstrap intervals.
        progress: called with ``(stage label, summed design counts)`` about once a second.

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
    from peftspace.sweep.sweep import check_data_dir, design_totals, resolve_space, run_local_workers, task_names
    from peftspace.schedule import Schedule

    space, tasks, schedule = resolve_space(start), task_names(tasks), schedule or Schedule()
    stages = tuple(stages.split(",") if isinstance(stages, str) else stages)
    unknown = [s for s in stages if s not in COMPONENTS]
    if unknown or not stages or len(set(stages)) != len(stages):
        raise SweepError(f"stages {list(stages)} must be distinct components from {list(COMPONENTS)}")
    if not isinstance(samples_per_space, int) or samples_per_space < 2:
        raise SweepError(f"samples_per_space={samples_per_space!r} must be an integer >= 2 (a ranking needs two errors per option)")
    check_data_dir(data_dir)
    name = safe_name(name or f"discover-{Path(model).name}-{'+'.join(tasks)}")
    url = storage_url(storage, name)
    out = Path(out_dir or Path("runs") / name)
    backbone = backbone_spec(load_config(model))
    definition = {"model": model, "tasks": tasks, "samples_per_space": samples_per_space, "seed": seed,
                  "schedule": schedule.to_dict(), "start": space.to_dict(), "components": list(stages),
                  "candidates": list(candidates), "confidence": confidence}
    log_study = _discovery_study(url, name, definition)
    log = {"name": name, **definition, "stages": [], "final_space": None, "final_design": None, "best": None, "status": "running"}

    for index, (label, component, group) in enumerate(_stage_plan(stages, space.num_groups)):
        options = component_subspaces(space, component, group=group, candidates=tuple(candidates))
        entry = {"stage": label, "component": component if group is None else f"strategies[{group}]",
                 "title": TITLES.get(component) or f"strategies of group {group + 1}", "options": {}, "ranking": None,
                 "winner": None, "verdict": None, "space": None, "status": "running"}
        log["stages"].append(entry)
        studies = []
        for option, subspace in options.items():
            study, designs = _queue_option(subspace, name, label, entry["component"], option, model, tasks, samples_per_space,
                                           seed, url, schedule, heartbeat, backbone)
            entry["options"][option] = {"study": study, "space": subspace.to_dict(), "designs": designs}
            studies += [study] if study else []
        _save(log_study, log)
        run_local_workers(url, studies, data_dir, workers, threads,
                          None if progress is None else lambda counts, label=label: progress(label, counts))
        pending = design_totals(url, studies)
        if pending["waiting"] + pending["running"]:  # trained by workers elsewhere (or none: workers=0)
            entry["status"] = log["status"] = "waiting"
            _save(log_study, log)
            return log
        errors = {}
        for option, info in entry["options"].items():
            rows = finished_trials(url, info["study"]) if info["study"] else []
            info["finished"] = len(rows)
            errors[option] = [row["error"] for row in rows]
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
    best = min(rows, key=lambda row: (row["error"], row["study"], row["design_index"]))
    return {k: best[k] for k in ("study", "trial", "design_index", "error", "design", "scores", "trainable")}


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
        design = Design.from_dict(min(rows, key=lambda row: row["error"])["design"])
        rule = "the best-error design trained in the last stage's winning subspace (the final space holds several)"
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
    stored = {**stored, "schedule": stored_schedule(stored.get("schedule", {}))}
    given = json.loads(json.dumps(definition))
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
