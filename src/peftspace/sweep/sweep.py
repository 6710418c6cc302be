"""``run_sweep``: draw a space's designs up front, queue them in an Optuna study, run local workers.

Re-running the same sweep continues it: the stored definition is compared, nothing is queued twice
(queueing holds ``queue_lock``, so sweeps started at once on one study queue it once), finished
designs never run again, and designs whose worker died come back through the heartbeat.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from peftspace.design.space import DesignSpace
from peftspace.devices import worker_slots
from peftspace.sweep.status import RESERVED_ATTRS, design_counts, retry_failed as requeue_failed, sweep_status
from peftspace.sweep.store import (DEFINITION_ATTR, HEARTBEAT_ATTR, TASK_LOCATIONS_ATTR, Heartbeat, SweepDefinition, SweepError,
                                   check_definition, enqueue_designs, load_study, open_storage, read_definition, redact, retrying,
                                   safe_name, storage_url)
from peftspace.tasks.task_file import resolve_tasks, stored_task_files, task_names


def resolve_space(space: DesignSpace | str) -> DesignSpace:
    """A space given as a ``DesignSpace``, a built-in name (S0..S4) or a YAML/JSON file."""
    from peftspace.design.space import builtin_spaces

    if isinstance(space, DesignSpace):
        return space.validate()
    builtins = builtin_spaces()
    if space in builtins:
        return builtins[space]
    if not Path(space).exists() and Path(space).suffix.lower() not in (".yaml", ".yml", ".json"):
        raise SweepError(f"space {space!r} is neither a built-in space {sorted(builtins)} nor a space file (.yaml/.json)")
    return DesignSpace.load(space)


def default_study_name(space: DesignSpace, model: str, tasks) -> str:
    return safe_name(f"{space.name}-{Path(model).name}-{'+'.join(tasks)}")


def run_sweep(space: DesignSpace | str, model: str, tasks, samples: int, seed: int = 0, workers: int | str = 1,
              storage: str | None = None, study_name: str | None = None, schedule=None, data_dir=None, progress=None, *,
              threads: int | None = None, heartbeat: Heartbeat = Heartbeat(), retry_failed: bool = False,
              max_consecutive_failures: int | None = 5, device: str = "auto") -> dict:
    """Sample ``samples`` designs of ``space`` for ``model``, queue them, and run ``workers`` local workers.

    Args:
        space: a ``DesignSpace``, a built-in name (``"S0"``..``"S4"``) or a space file.
        model: the backbone (path, hub id or alias such as ``"minilm"``).
        tasks: task names (a list, or one comma-separated string); every design is trained on each.
        samples: how many designs to draw (deterministic for ``seed``; design i trains with seed ``seed + i``).
        workers: local worker processes (spawned); 0 only creates and queues the sweep, for workers
            started elsewhere with ``run_worker`` / ``peftspace worker``; ``"auto"``: one per visible
            GPU, each pinned to its own (``peftspace.devices.worker_slots``), or one on a CPU machine.
        storage: an Optuna storage URL; default ``sqlite:///runs/<study>.db`` under the current directory.
        study_name: default ``<space>-<model>-<tasks>``.
        schedule: the ``Schedule`` of every trial (default ``Schedule()``).
        data_dir: the tasks' files; None loads them from the hub.
        progress: called about once a second with the designs' counts (``design_counts``).
        threads: torch threads per worker; default the CPU count divided by ``workers``.
        heartbeat: how dead workers are noticed and their designs re-queued (stored in the study).
        retry_failed: first re-queue designs that failed (diverged or raised).
        max_consecutive_failures: each worker stops after this many trials in a row that raised
            (``run_worker``); None never stops.
        device: where the local workers' trials run (``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``). Not part
            of the sweep: resuming on another device continues the same study.

    Returns:
        ``sweep_status`` once the workers have stopped.

    Raises:
        SweepError: for a bad storage URL, a study that holds a different sweep, or workers that stopped
            with an error (finished trials are kept: re-run to continue).
    """
    from peftspace.sweep.worker import _FailureStreak

    _FailureStreak(max_consecutive_failures)  # checked before anything is queued
    space = resolve_space(space)
    tasks = resolve_tasks(tasks)
    if workers != "auto" and (not isinstance(workers, int) or workers < 0):
        raise SweepError(f"workers={workers!r} must be a non-negative integer or 'auto'")
    worker_slots(workers, device, threads)  # a CUDA request without CUDA fails before anything is queued
    check_data_dir(data_dir)
    url, study_name = queue_sweep(space, model, tasks, samples, seed, storage, study_name, schedule, heartbeat=heartbeat,
                                  retry_failed=retry_failed)
    run_local_workers(url, [study_name], data_dir, workers, threads, progress, max_consecutive_failures=max_consecutive_failures,
                      device=device)
    return sweep_status(url, study_name)


def check_data_dir(data_dir) -> None:
    if data_dir is not None and not Path(data_dir).is_dir():
        raise SweepError(f"data directory {str(data_dir)!r} does not exist or is not a directory")


def queue_sweep(space: DesignSpace, model: str, tasks: list[str], samples: int | None, seed: int = 0, storage: str | None = None,
                study_name: str | None = None, schedule=None, *, heartbeat: Heartbeat = Heartbeat(),
                retry_failed: bool = False, designs: list | None = None, extras: list[dict] | None = None) -> tuple[str, str]:
    """Create the sweep's study (or find it, checking its definition) and queue its designs; no training.

    Queueing holds ``queue_lock``: of several processes queueing one study at once, one queues it and
    the others, once it is done, find it queued (or finish a queueing that was cut short).

    Args:
        designs: queue exactly these designs (``Design`` objects or their dicts), in this order, instead of
            sampling ``samples`` of ``space`` (which still describes the sweep); ``samples`` must then be
            None or ``len(designs)``. The definition stores ``designs_sha256`` (of the designs and their
            extras), so a re-run with other designs is refused.
        extras: with ``designs``, ``extras[i]`` holds extra user attrs of design i's trial (JSON values,
            e.g. ``{"block": 3, "option": "spindle"}``; ``"seed"`` replaces its seed ``seed + i``); they
            come back in ``design_outcomes``.

    Returns:
        ``(storage URL, study name)``, for ``run_local_workers`` or workers started elsewhere.
    """
    from peftspace.sweep.lock import queue_lock
    from peftspace.schedule import Schedule

    designs, extras, samples = _explicit(designs, extras, samples)
    schedule = schedule or Schedule()
    tasks = resolve_tasks(tasks)
    study_name = study_name or default_study_name(space, model, task_names(tasks))
    url = storage_url(storage, study_name)
    definition = SweepDefinition(space=space.to_dict(), model=model, tasks=tuple(task_names(tasks)), samples=samples,
                                 seed=seed, schedule=asdict(schedule), designs_sha256=designs and _sha256(designs, extras),
                                 task_files=stored_task_files(tasks))
    store = open_storage(url)
    with queue_lock(store, study_name):
        study = _create_study(store, study_name)
        new = check_definition(study, definition, url)
        if new or study.user_attrs.get("enqueued") != samples:  # also completes a queueing that was cut short
            if designs is None:
                from peftspace.design.space import sample
                from peftspace.families import backbone_spec
                from peftspace.models import load_config

                designs = sample(space, samples, seed, backbone_spec(load_config(model)))  # may fail: then nothing is stored
            if new:
                study.set_user_attr(DEFINITION_ATTR, definition.to_dict())
                if definition.task_files:  # where the data is here: a hint for this machine's workers, not compared
                    study.set_user_attr(TASK_LOCATIONS_ATTR, {t.name: t.locations() for t in tasks if not isinstance(t, str)})
            enqueue_designs(study, designs, seed, extras)
            study.set_user_attr("enqueued", samples)
        study.set_user_attr(HEARTBEAT_ATTR, asdict(heartbeat))
    if retry_failed:
        requeue_failed(url, study_name)
    return url, study_name


def _explicit(designs, extras, samples):
    """``(designs, extras, samples)`` checked: every problem at once, as one SweepError."""
    from peftspace.design import Design

    if designs is None:
        if extras is not None:
            raise SweepError("extras are the extra user attrs of designs given explicitly; pass designs=[...] with them")
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
            raise SweepError(f"samples={samples!r} must be a positive integer")
        return None, None, samples
    designs = [Design.from_dict(d) if isinstance(d, dict) else d for d in designs]
    problems = [f"designs[{i}] is a {type(d).__name__}, not a Design" for i, d in enumerate(designs) if not isinstance(d, Design)]
    if not designs:
        problems.append("designs is empty; give at least one design")
    if samples is not None and samples != len(designs):
        problems.append(f"samples={samples!r} but {len(designs)} designs were given; pass samples=None or {len(designs)}")
    if extras is not None:
        if len(extras) != len(designs):
            problems.append(f"{len(extras)} extras for {len(designs)} designs; give one dict per design")
        for i, extra in enumerate(extras):
            if not isinstance(extra, dict):
                problems.append(f"extras[{i}] is a {type(extra).__name__}, not a dict")
                continue
            clash = sorted(str(k) for k in extra if not isinstance(k, str) or k in RESERVED_ATTRS)
            if clash:
                problems.append(f"extras[{i}] uses the reserved keys {clash}; rename them")
            seed = extra.get("seed", 0)
            if not isinstance(seed, int) or isinstance(seed, bool):
                problems.append(f"extras[{i}]['seed']={seed!r} must be an integer")
            try:
                json.dumps(extra)
            except (TypeError, ValueError) as error:
                problems.append(f"extras[{i}] is not JSON ({error})")
    if problems:
        raise SweepError(f"{len(problems)} problem(s) with the designs given: " + "; ".join(problems))
    return designs, extras, len(designs)


def _sha256(designs: list, extras: list[dict] | None) -> str:
    items = [{"design": d.to_dict(), "extras": extras[i] if extras else {}} for i, d in enumerate(designs)]
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()


def run_local_workers(url: str, study_names: list[str], data_dir=None, workers: int | str = 1, threads: int | None = None,
                      progress=None, *, max_consecutive_failures: int | None = 5, device: str = "auto") -> None:
    """Run ``workers`` spawned worker processes over the queued designs of ``study_names``, in that order.

    Each process keeps its backbone and tokenized data across the trials of every study. Starts
    nothing when no design is waiting or running; ``progress`` gets the designs' counts summed over
    the studies about once a second. Each worker stops after ``max_consecutive_failures`` trials in a
    row that raised (``run_worker``). ``workers`` and ``device`` become processes as
    ``peftspace.devices.worker_slots`` says (``"auto"``: one per visible GPU, each pinned to its own).

    Raises:
        SweepError: workers that stopped with an error, each distinct error once (finished trials are
            kept: re-run to continue).
    """
    if workers and url.rstrip("/") in ("sqlite:", "sqlite:///:memory:"):
        raise SweepError("an in-memory SQLite storage cannot be shared with worker processes; use sqlite:///FILE.db")
    store = open_storage(url)
    studies = [load_study(store, name, url) for name in study_names]
    pending = _totals(studies)
    if not workers or not pending["waiting"] + pending["running"]:  # a finished sweep starts no workers
        return
    _run_processes(url, study_names, data_dir, worker_slots(workers, device, threads), lambda: _totals(studies), progress,
                   max_consecutive_failures)


def design_totals(url: str, study_names: list[str]) -> dict[str, int]:
    """The designs' counts per state (``design_counts``), summed over several sweeps of one store."""
    store = open_storage(url)
    return _totals([load_study(store, name, url) for name in study_names])


def _totals(studies) -> dict[str, int]:
    total: dict[str, int] = {}
    for study in studies:
        for state, n in design_counts(retrying(study.get_trials, deepcopy=False), read_definition(study).samples).items():
            total[state] = total.get(state, 0) + n
    return total


def _create_study(store, study_name: str):
    import optuna

    return retrying(optuna.create_study, storage=store, study_name=study_name, direction="minimize", load_if_exists=True)


def _run_processes(url, study_names, data_dir, slots, counts, progress, max_consecutive_failures) -> None:
    import multiprocessing

    from multiprocessing.connection import wait

    from peftspace.sweep.worker import spawned_worker

    context = multiprocessing.get_context("spawn")
    errors = context.SimpleQueue()
    arguments = (url, list(study_names), str(data_dir) if data_dir else None)
    processes = [context.Process(target=spawned_worker, name=f"peftspace-worker-{i}",
                                 args=(*arguments, slot.threads, errors, max_consecutive_failures, slot.device, slot.env))
                 for i, slot in enumerate(slots)]
    workers = len(processes)
    for process in processes:
        process.start()
    try:
        while any(p.is_alive() for p in processes):
            if progress is not None:
                progress(counts())
            wait([p.sentinel for p in processes if p.is_alive()], timeout=1.0)  # back as soon as the last one ends
    except KeyboardInterrupt:  # the workers got it too: they fail and re-queue their trials, then stop
        for process in processes:
            process.join(timeout=30)
        raise
    if progress is not None:
        progress(counts())
    failed = [p for p in processes if p.exitcode]
    if failed:
        messages = []
        while not errors.empty():
            messages.append(errors.get())
        said = "; ".join(dict.fromkeys(messages)) or f"exit codes {[p.exitcode for p in failed]}"
        advice = "" if "fix the cause and re-run" in said else ": fix the cause and re-run to continue"
        raise SweepError(f"{len(failed)} of {workers} worker(s) stopped with an error: {said}; "
                         f"finished trials are kept in {redact(url)}{advice}")
