"""``run_sweep``: draw a space's designs up front, queue them in an Optuna study, run local workers.

Re-running the same sweep continues it: the stored definition is compared, nothing is queued twice,
finished designs never run again, and designs whose worker died come back through the heartbeat.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path

from peftspace.design.space import DesignSpace
from peftspace.sweep.status import design_counts, retry_failed as requeue_failed, sweep_status
from peftspace.sweep.store import (DEFINITION_ATTR, HEARTBEAT_ATTR, Heartbeat, SweepDefinition, SweepError, check_definition,
                                   enqueue_designs, load_study, open_storage, read_definition, redact, retrying, safe_name,
                                   storage_url)


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


def run_sweep(space: DesignSpace | str, model: str, tasks, samples: int, seed: int = 0, workers: int = 1,
              storage: str | None = None, study_name: str | None = None, schedule=None, data_dir=None, progress=None, *,
              threads: int | None = None, heartbeat: Heartbeat = Heartbeat(), retry_failed: bool = False) -> dict:
    """Sample ``samples`` designs of ``space`` for ``model``, queue them, and run ``workers`` local workers.

    Args:
        space: a ``DesignSpace``, a built-in name (``"S0"``..``"S4"``) or a space file.
        model: the backbone (path, hub id or alias such as ``"minilm"``).
        tasks: task names (a list, or one comma-separated string); every design is trained on each.
        samples: how many designs to draw (deterministic for ``seed``; design i trains with seed ``seed + i``).
        workers: local worker processes (spawned); 0 only creates and queues the sweep, for workers
            started elsewhere with ``run_worker`` / ``peftspace worker``.
        storage: an Optuna storage URL; default ``sqlite:///runs/<study>.db`` under the current directory.
        study_name: default ``<space>-<model>-<tasks>``.
        schedule: the ``Schedule`` of every trial (default ``Schedule()``).
        data_dir: the tasks' files; None loads them from the hub.
        progress: called about once a second with the designs' counts (``design_counts``).
        threads: torch threads per worker; default the CPU count divided by ``workers``.
        heartbeat: how dead workers are noticed and their designs re-queued (stored in the study).
        retry_failed: first re-queue designs that failed (diverged or raised).

    Returns:
        ``sweep_status`` once the workers have stopped.

    Raises:
        SweepError: for a bad storage URL, a study that holds a different sweep, or workers that stopped
            with an error (finished trials are kept: re-run to continue).
    """
    space = resolve_space(space)
    tasks = task_names(tasks)
    if not isinstance(workers, int) or workers < 0:
        raise SweepError(f"workers={workers!r} must be a non-negative integer")
    check_data_dir(data_dir)
    url, study_name = queue_sweep(space, model, tasks, samples, seed, storage, study_name, schedule, heartbeat=heartbeat,
                                  retry_failed=retry_failed)
    run_local_workers(url, [study_name], data_dir, workers, threads, progress)
    return sweep_status(url, study_name)


def task_names(tasks) -> list[str]:
    """Canonical task names from a list or one comma-separated string (unknown tasks raise)."""
    from peftspace.tasks import task_spec

    return [task_spec(t.strip()).name for t in (tasks.split(",") if isinstance(tasks, str) else tasks)]


def check_data_dir(data_dir) -> None:
    if data_dir is not None and not Path(data_dir).is_dir():
        raise SweepError(f"data directory {str(data_dir)!r} does not exist or is not a directory")


def queue_sweep(space: DesignSpace, model: str, tasks: list[str], samples: int, seed: int = 0, storage: str | None = None,
                study_name: str | None = None, schedule=None, *, heartbeat: Heartbeat = Heartbeat(),
                retry_failed: bool = False) -> tuple[str, str]:
    """Create the sweep's study (or find it, checking its definition) and queue its designs; no training.

    Returns:
        ``(storage URL, study name)``, for ``run_local_workers`` or workers started elsewhere.
    """
    from peftspace.design.space import sample
    from peftspace.families import backbone_spec
    from peftspace.models import load_config
    from peftspace.schedule import Schedule

    if not isinstance(samples, int) or samples < 1:
        raise SweepError(f"samples={samples!r} must be a positive integer")
    schedule = schedule or Schedule()
    study_name = study_name or default_study_name(space, model, tasks)
    url = storage_url(storage, study_name)
    definition = SweepDefinition(space=space.to_dict(), model=model, tasks=tuple(tasks), samples=samples, seed=seed,
                                 schedule=asdict(schedule))
    study = _create_study(url, study_name)
    new = check_definition(study, definition, url)
    if new or study.user_attrs.get("enqueued") != samples:  # also completes a queueing that was cut short
        designs = sample(space, samples, seed, backbone_spec(load_config(model)))  # may fail: then nothing is stored
        if new:
            study.set_user_attr(DEFINITION_ATTR, definition.to_dict())
        enqueue_designs(study, designs, seed)
        study.set_user_attr("enqueued", samples)
    study.set_user_attr(HEARTBEAT_ATTR, asdict(heartbeat))
    if retry_failed:
        requeue_failed(url, study_name)
    return url, study_name


def run_local_workers(url: str, study_names: list[str], data_dir=None, workers: int = 1, threads: int | None = None,
                      progress=None) -> None:
    """Run ``workers`` spawned worker processes over the queued designs of ``study_names``, in that order.

    Each process keeps its backbone and tokenized data across the trials of every study. Starts
    nothing when no design is waiting or running; ``progress`` gets the designs' counts summed over
    the studies about once a second.

    Raises:
        SweepError: workers that stopped with an error (finished trials are kept: re-run to continue).
    """
    if workers and url.rstrip("/") in ("sqlite:", "sqlite:///:memory:"):
        raise SweepError("an in-memory SQLite storage cannot be shared with worker processes; use sqlite:///FILE.db")
    store = open_storage(url)
    studies = [load_study(store, name, url) for name in study_names]
    pending = _totals(studies)
    if not workers or not pending["waiting"] + pending["running"]:  # a finished sweep starts no workers
        return
    _run_processes(url, study_names, data_dir, workers, threads or max(1, (os.cpu_count() or 1) // workers),
                   lambda: _totals(studies), progress)


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


def _create_study(url: str, study_name: str):
    import optuna

    store = open_storage(url)
    return retrying(optuna.create_study, storage=store, study_name=study_name, direction="minimize", load_if_exists=True)


def _run_processes(url, study_names, data_dir, workers, threads, counts, progress) -> None:
    import multiprocessing

    from peftspace.sweep.worker import worker_process

    context = multiprocessing.get_context("spawn")
    errors = context.SimpleQueue()
    arguments = (url, list(study_names), str(data_dir) if data_dir else None, threads, errors)
    processes = [context.Process(target=worker_process, args=arguments, name=f"peftspace-worker-{i}") for i in range(workers)]
    for process in processes:
        process.start()
    try:
        while any(p.is_alive() for p in processes):
            if progress is not None:
                progress(counts())
            time.sleep(1.0)
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
        raise SweepError(f"{len(failed)} of {workers} worker(s) stopped with an error "
                         f"({'; '.join(dict.fromkeys(messages)) or 'exit codes ' + str([p.exitcode for p in failed])}); "
                         f"finished trials are kept in {redact(url)}: fix the cause and re-run to continue")
