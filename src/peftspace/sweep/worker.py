"""The worker loop: take a queued design, train it on every task of the sweep, store the result.

Any number of workers, on one machine or many, can run against one store. Each loads the sweep's
tasks once and keeps one ``TrialCache`` for all its trials: the backbone is loaded and each task
encoded once per worker, and every trial trains its own copy of the pristine backbone. A design
that diverges or raises is told FAIL with its ``reason`` and the worker goes on, unless designs keep
raising: after ``max_consecutive_failures`` trials in a row that raised, the cause is the setup, not
the designs, and the worker stops with one error rather than fail the whole queue. A worker that
dies leaves its trial silent, and the heartbeat re-queues it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import traceback

from peftspace.design.errors import PeftspaceError
from peftspace.sweep.store import (TASK_LOCATIONS_ATTR, SweepError, design_index, load_study, matching_sweeps, open_storage,
                                   read_definition, read_heartbeat, reap_stale, retrying, take_waiting)


class _Heartbeat:
    """Records the running trial's heartbeat now and then every ``interval`` s on a daemon thread.

    ``Study.ask`` does not start Optuna's own heartbeat thread (only ``Study.optimize`` does).
    """

    def __init__(self, storage, trial_id: int, interval: int):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"heartbeat-{trial_id}", daemon=True)

    def __enter__(self):
        retrying(self.storage.record_heartbeat, self.trial_id)
        self.thread.start()
        return self

    def _run(self):
        while not self.stop.wait(self.interval):
            try:
                retrying(self.storage.record_heartbeat, self.trial_id, attempts=3)
            except Exception:  # a missed beat is harmless; the next one may get through
                pass

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


class _Stores:
    """The stores a worker has opened, one per URL and heartbeat, reused by every study it runs.

    Opening an ``RDBStorage`` costs about 0.2 s (Optuna creates and checks the schema), which a worker
    otherwise paid four times per study, and a follower on every poll.
    """

    def __init__(self):
        self.opened: dict = {}

    def get(self, url: str, heartbeat=None):
        if (url, heartbeat) not in self.opened:
            self.opened[url, heartbeat] = open_storage(url, heartbeat)
        return self.opened[url, heartbeat]

    def close(self) -> None:
        for storage in self.opened.values():
            storage.engine.dispose()  # closes the connections: a server sees a clean goodbye, not a dropped socket
        self.opened.clear()


class _FailureStreak:
    """The reasons of the trials that raised one after the other; at ``limit`` of them, the worker stops."""

    def __init__(self, limit: int | None):
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise SweepError(f"max_consecutive_failures={limit!r} must be a positive integer, or None to never stop")
        self.limit, self.reasons = limit, []

    def add(self, summary: dict) -> None:
        if summary["failure"] != "raised":  # it ran (even if it diverged): the setup works
            self.reasons.clear()
            return
        self.reasons.append(summary["reason"])
        if self.limit is not None and len(self.reasons) >= self.limit:
            n, last = len(self.reasons), self.reasons[-1]
            why = f"all {n} with the same reason: {last}" if len(set(self.reasons)) == 1 else f"the last: {last}"
            raise SweepError(f"stopped after {n} consecutive failed trials, {why}; fix the cause and re-run "
                             f"(retry_failed / --retry-failed re-queues the failed designs)")


def run_worker(storage: str, study_name: str | list[str], data_dir=None, *, threads: int | None = None,
               max_trials: int | None = None, on_trial=None, cache=None, max_consecutive_failures: int | None = 5,
               device: str = "auto") -> int:
    """Run queued designs of the sweep ``study_name`` until none is left; returns how many it ran.

    Args:
        storage: the store's URL (``sqlite:///...`` or ``postgresql://...``).
        study_name: the sweep's study, created by ``run_sweep``; or a list of studies, run one after
            the other in this process (a discovery stage's subspaces), sharing the loaded tasks.
        data_dir: the tasks' files (layout of ``shared/data``); None loads them from the hub.
        threads: torch threads for this process (``torch.set_num_threads``); None leaves them as they are.
        max_trials: stop after this many trials (None: until the queue is empty).
        on_trial: called with a summary dict after each trial.
        cache: the ``TrialCache`` this worker's trials share (None: a new one).
        max_consecutive_failures: stop after this many trials in a row that raised an exception (a
            missing file, a broken model, a bad format: a cause no design escapes), leaving the other
            designs waiting; None never stops. A diverged trial does not count (it is a finding about
            its design) and, like a finished one, ends the streak.
        device: where this worker's trials run (``peftspace.devices``). It is the worker's, not the
            sweep's: no schedule key, not stored in the study, so GPU and CPU workers may share one
            study (each trial's record names its device).

    While no design is queued but some are running elsewhere, the worker waits: a running trial
    whose worker died comes back to the queue once its heartbeat is stale.

    Raises:
        SweepError: after ``max_consecutive_failures`` trials that raised, naming the count and the last
            reason (the failed trials keep theirs in the store).
    """
    stores = _Stores()
    try:
        return _run_worker(storage, study_name, data_dir, stores, threads=threads, max_trials=max_trials, on_trial=on_trial,
                           cache=cache, max_consecutive_failures=max_consecutive_failures, device=device)
    finally:
        stores.close()


def _run_worker(storage, study_name, data_dir, stores: "_Stores", *, threads, max_trials, on_trial, cache,
                max_consecutive_failures, device) -> int:
    from peftspace.devices import resolve_device

    streak = _FailureStreak(max_consecutive_failures)
    device = str(resolve_device(device))  # a CUDA request without CUDA fails here, before any trial
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if cache is None:
        from peftspace.trial import TrialCache

        cache = TrialCache()
    tasks: dict = {}  # (task, seed) -> TaskData, loaded once for every study of this worker
    names = [study_name] if isinstance(study_name, str) else list(study_name)
    ran = 0
    # First every study's queue; then each study again, waiting out trials in flight elsewhere
    # (one whose worker died comes back to the queue once its heartbeat is stale).
    for wait, name in [(False, n) for n in names] + [(True, n) for n in names]:
        if max_trials is not None and ran >= max_trials:
            break
        ran += _run_study(storage, name, data_dir, tasks, None if max_trials is None else max_trials - ran, on_trial, wait, cache,
                          streak, device, stores)
    return ran


def follow_sweeps(storage: str, patterns: str, data_dir=None, *, until=None, idle_timeout: float = 600.0,
                  poll: float = 5.0, **worker_options) -> int:
    """``run_worker`` over every sweep matching ``patterns`` (``NAME/*``), including sweeps created after it
    started: a discovery run with ``--workers 0`` queues each stage only once the stage before it is decided,
    so a worker started with the discovery follows it to the end. Returns the trials it ran.

    Stops when ``until()`` is true after a pass with nothing to run (the CLI: the discovery ``NAME`` is done),
    or after ``idle_timeout`` seconds in which no design was queued; sleeps ``poll`` seconds between passes.
    ``worker_options`` go to ``run_worker`` (one ``TrialCache`` is shared by every pass).
    """
    if not (isinstance(idle_timeout, (int, float)) and idle_timeout >= 0 and isinstance(poll, (int, float)) and poll > 0):
        raise SweepError(f"idle_timeout={idle_timeout!r} must be >= 0 seconds and poll={poll!r} > 0 seconds")
    if worker_options.get("cache") is None:
        from peftspace.trial import TrialCache

        worker_options["cache"] = TrialCache()
    options = {"threads": None, "max_trials": None, "on_trial": None, "max_consecutive_failures": 5, "device": "auto",
               **worker_options}
    stores = _Stores()  # opened once for every pass, not once per pass and study
    try:
        return _follow(storage, patterns, data_dir, stores, until, idle_timeout, poll, options)
    finally:
        stores.close()


def _follow(storage, patterns, data_dir, stores, until, idle_timeout, poll, options) -> int:
    ran, idle_since = 0, time.monotonic()
    while True:
        try:
            studies = matching_sweeps(storage, patterns, store=stores.get(storage))
        except SweepError:  # nothing queued under these names yet
            studies = []
        done = _run_worker(storage, studies, data_dir, stores, **options) if studies else 0
        ran += done
        if done:
            idle_since = time.monotonic()
        elif until is not None and until():
            return ran
        if time.monotonic() - idle_since >= idle_timeout:
            return ran
        time.sleep(poll)


def discovery_done(storage: str, name: str) -> bool:
    """Whether the discovery ``name`` in ``storage`` has finished (False when there is none by that name)."""
    from peftspace.discover import read_discovery

    try:
        return read_discovery(storage, name).get("status") == "done"
    except SweepError:
        return False


def _run_study(storage: str, study_name: str, data_dir, tasks: dict, max_trials: int | None, on_trial, wait: bool,
               cache, streak: _FailureStreak, device: str, stores: "_Stores") -> int:
    import optuna
    from optuna.trial import TrialState

    from peftspace.schedule import Schedule
    from peftspace.tasks import load_task
    from peftspace.tasks.task_file import TaskFile

    first = load_study(stores.get(storage), study_name, storage)
    definition, heartbeat = read_definition(first), read_heartbeat(first)
    store = stores.get(storage, heartbeat)
    study = optuna.load_study(study_name=study_name, storage=store)
    schedule = Schedule.from_stored(definition.schedule)

    def load_data() -> dict:
        # With the sweep's seed: every design sees the same splits. A task file is rebuilt from the store, its data
        # found under this worker's data_dir (else where the sweep was made) and refused if its hash differs.
        data = {}
        for task in definition.tasks:
            stored = (definition.task_files or {}).get(task)
            if stored is not None:  # found and hashed once per worker, though a discovery's sweeps all name it
                key = (json.dumps(stored, sort_keys=True), definition.seed)
                if key not in tasks:
                    locations = (first.user_attrs.get(TASK_LOCATIONS_ATTR) or {}).get(task)
                    tasks[key] = TaskFile.from_stored(stored, data_dir, locations).load(definition.seed)
            else:
                key = (task, definition.seed)
                if key not in tasks:
                    tasks[key] = load_task(task, data_dir, seed=definition.seed)
            data[task] = tasks[key]
        return data

    data = None  # loaded once there is a design to run: a finished sweep costs a follower no data loading
    ran = 0
    while max_trials is None or ran < max_trials:
        reap_stale(study, heartbeat)
        trials = retrying(study.get_trials, deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
        if not any(t.state == TrialState.WAITING for t in trials):
            if not trials or not wait:
                break
            time.sleep(min(heartbeat.interval, 5))  # in flight elsewhere; a dead one is re-queued once stale
            continue
        if data is None:  # before a trial is taken: a task that fails to load leaves every design waiting
            data = load_data()
        trial = _pop(study, store)
        if trial is None:  # another worker took the last one meanwhile
            continue
        with _Heartbeat(store, trial._trial_id, heartbeat.interval):
            retrying(trial.set_user_attr, "attempt", trial.number)  # marks it alive (see reap_stale)
            summary = _run_one(study, trial, definition, schedule, data, cache, device)
        if summary is None:
            continue
        ran += 1
        if on_trial is not None:
            on_trial(summary)
        streak.add(summary)
    return ran


def _pop(study, store):
    """Take the first waiting trial, as ``Study.ask`` does, but never create a fresh one when none is left.

    ``take_waiting`` records its heartbeat and ``popped_at_utc`` before it turns RUNNING, so a worker
    killed at any moment after that leaves a trial that ``reap_stale`` sees as stale. A trial listed as
    waiting but taken, finished or cancelled (PRUNED) since is skipped: only WAITING turns RUNNING.
    """
    import optuna
    from optuna.trial import TrialState

    for waiting in retrying(study.get_trials, deepcopy=False, states=(TrialState.WAITING,)):
        if take_waiting(store, waiting._trial_id):
            return optuna.trial.Trial(study, waiting._trial_id)
    return None


def _run_one(study, trial, definition, schedule, data, cache, device="auto") -> dict | None:
    """Run one popped trial and tell its outcome; None if it was not a design to run."""
    from optuna.trial import TrialState

    index = trial.user_attrs.get("design_index")
    if index is None:  # queued by something else than run_sweep
        _tell(study, trial, TrialState.PRUNED, {"reason": "not a design of this sweep (no design_index user attr)"})
        return None
    retrying(trial.suggest_int, "design_index", 0, definition.samples - 1)
    done = [t for t in retrying(study.get_trials, deepcopy=False, states=(TrialState.COMPLETE,)) if design_index(t) == index]
    if done:
        _tell(study, trial, TrialState.PRUNED, {"reason": f"design {index} already finished as trial {done[0].number}"})
        return None
    try:
        result = run_design(trial.user_attrs["design"], definition, schedule, data, trial.user_attrs["seed"], cache=cache,
                            device=device)
    except (KeyboardInterrupt, SystemExit):
        _interrupted(study, trial)
        raise
    result["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    ok = result["status"] == "ok"
    _tell(study, trial, TrialState.COMPLETE if ok else TrialState.FAIL, result, result["error"] if ok else None)
    return {"trial": trial.number, "design_index": index,
            **{k: result[k] for k in ("status", "failure", "reason", "error", "wall_time_s")}}


def run_design(design: dict, definition, schedule, data: dict, seed: int, *, cache=None, device: str = "auto") -> dict:
    """Train ``design`` on every task; the result attrs of the trial, ``status`` ok or failed with a ``reason``.

    The ``error`` (the sweep's objective) is ``error_from_scores`` of the per-task test scores: 100 -
    their mean (lower is better). ``validation_error`` and ``mid_validation_error`` are the same of the
    validation scores at the end and at the midpoint of training (``validation_scores``,
    ``mid_validation_scores``), or None unless every task has that score (or the design failed).
    ``failure`` says how a failed design failed: ``"trial"`` (the trial reported it, e.g. a diverged
    loss) or ``"raised"`` (an exception). ``cache``: a ``TrialCache`` shared with other trials (None:
    each task's trial loads its own). ``device``: where the trials run.
    """
    from peftspace.design import Design
    from peftspace.trial import run_trial

    started = time.perf_counter()
    result = {"status": "ok", "failure": None, "reason": None, "tasks": {}, "scores": {}, "average_score": None, "error": None,
              "validation_scores": {}, "validation_error": None, "mid_validation_scores": {}, "mid_validation_error": None,
              "trainable": None}
    try:
        for task in definition.tasks:
            record = run_trial(Design.from_dict(design), definition.model, data[task], schedule, seed, cache=cache, device=device)
            result["tasks"][task] = {k: v for k, v in record.items() if k not in ("design", "schedule", "model", "seed")}
            if record["status"] != "ok":
                result.update(status="failed", failure="trial", reason=f"{task}: {record['reason']}")
                break
            result["scores"][task] = record["score"]
            result["validation_scores"][task] = record.get("validation_score")
            result["mid_validation_scores"][task] = record.get("mid_validation_score")
            result["trainable"] = record["trainable"]["design"]
        else:
            result["error"] = _error(result["scores"])
            result["average_score"] = 100.0 - result["error"]
            result["validation_error"] = _error(result["validation_scores"])
            result["mid_validation_error"] = _error(result["mid_validation_scores"])
    except Exception as error:  # a bad design must never stop the sweep
        frame = traceback.extract_tb(error.__traceback__)[-1]
        where = f"{os.path.basename(frame.filename)}:{frame.lineno}"
        result.update(status="failed", failure="raised", reason=f"{type(error).__name__}: {error} (at {where})",
                      validation_error=None, mid_validation_error=None)
    result["wall_time_s"] = round(time.perf_counter() - started, 3)
    return result


def _error(scores: dict) -> float | None:
    """``error_from_scores`` of per-task scores, or None when a task has none."""
    from peftspace.analysis.stats import error_from_scores

    if not scores or any(score is None for score in scores.values()):
        return None
    return float(error_from_scores(scores))


def _tell(study, trial, state, attrs: dict, value: float | None = None) -> None:
    import optuna

    try:
        for key, value_ in attrs.items():
            retrying(trial.set_user_attr, key, value_)
        retrying(study.tell, trial, value, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # failed as stale meanwhile (its heartbeat starved); its re-queued copy runs the design again


def _interrupted(study, trial) -> None:
    """Ctrl-C: fail the trial now and re-queue its design, rather than wait for the heartbeat."""
    from optuna.trial import TrialState

    from peftspace.sweep.store import retry_callback

    try:
        _tell(study, trial, TrialState.FAIL, {"reason": "interrupted; re-queued"})
        retry_callback(max_retry=None)(study, study._storage.get_trial(trial._trial_id))
    except Exception:  # best effort: otherwise the heartbeat re-queues it
        pass


def worker_process(storage: str, study_names: list[str], data_dir, threads: int | None, errors,
                   max_consecutive_failures: int | None = 5, device: str = "auto", env: dict | None = None) -> None:
    """The entry point of a local worker process started by ``run_local_workers`` (spawn context).

    It runs the studies' queued designs in order, one study after the other, in one process, so the
    backbone and the tokenized data it keeps serve every trial. ``env`` (a ``WorkerSlot``'s, e.g. the
    ``CUDA_VISIBLE_DEVICES`` that pins it to one GPU) is set first, before torch initializes CUDA.
    """
    os.environ.update(env or {})
    import logging

    import optuna
    from transformers.utils import logging as hf_logging

    optuna.logging.set_verbosity(logging.WARNING)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        run_worker(storage, study_names, data_dir, threads=threads, max_consecutive_failures=max_consecutive_failures,
                   device=device)
    except PeftspaceError as error:
        errors.put(str(error))
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as error:
        errors.put(f"{type(error).__name__}: {error}")
        raise


def spawned_worker(*arguments) -> None:
    """``worker_process`` as the target of a spawned process: once it is done, the process ends at once.

    Everything a worker made is committed to the store and its connections are closed by then, yet
    Python's teardown of a process that loaded torch and a model takes 1.5-1.9 s (measured on a
    2-core AMD EPYC, in C, after every atexit handler), paid by every sweep and every discovery
    stage. ``os._exit`` skips it, as ``multiprocessing`` itself does for forked children. An
    unexpected exception still goes the normal way, so its traceback is printed.
    """
    import sys

    try:
        worker_process(*arguments)
        code = 0
    except SystemExit as stop:
        code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed stream has nothing left to write
            pass
    os._exit(code)
