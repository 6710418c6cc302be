"""Queueing is atomic: sweeps started at once queue a study once; a dead queuer's lock goes with it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest

from peftspace.sweep import SweepError, queue_sweep, resolve_space, retry_failed
from peftspace.sweep.lock import queue_lock
from peftspace.sweep.store import design_index, open_storage

SAMPLES = 40


def _queue(url: str, start, out: str) -> None:
    """One ``peftspace sweep --workers 0``, as a spawned process, released with the others by ``start``."""
    start.wait()
    queue_sweep(resolve_space("S0"), "minilm", ["rte"], SAMPLES, 0, url, "race")
    with open(out, "w") as done:
        done.write("ok")


def race(url: str, tmp_path, processes: int = 3) -> list:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes)
    outs = [tmp_path / f"queued{i}.txt" for i in range(processes)]
    running = [context.Process(target=_queue, args=(url, start, str(out))) for out in outs]
    for process in running:
        process.start()
    for process in running:
        process.join(timeout=240)
    assert [p.exitcode for p in running] == [0] * processes
    assert all(out.read_text() == "ok" for out in outs)
    return optuna.load_study(study_name="race", storage=open_storage(url)).get_trials()


def test_sweeps_started_at_once_on_a_new_study_queue_every_design_exactly_once(tmp_path):
    trials = race(f"sqlite:///{tmp_path}/race.db", tmp_path)
    assert Counter(design_index(t) for t in trials) == {i: 1 for i in range(SAMPLES)}  # without the lock: 2 or 3 each
    assert all(t.state.name == "WAITING" for t in trials)


HOLD = """
import sys, time
from peftspace.sweep.lock import queue_lock
from peftspace.sweep.store import open_storage
with queue_lock(open_storage(sys.argv[1]), "held"):
    print("held", flush=True)
    time.sleep(600)
"""


def hold_lock(url: str):
    """A process that takes the queueing lock of study 'held' and keeps it until it is killed."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def check_lock_follows_its_holder(url: str, per_study: bool) -> None:
    """While a process holds study 'held's lock, others wait for it (and time out saying so); killed, it frees it at once."""
    holder = hold_lock(url)
    try:
        started = time.monotonic()
        with pytest.raises(SweepError, match=r"another process has been queueing study 'held' in .* for over 1 s"):
            with queue_lock(open_storage(url), "held", timeout=1.0):
                pass
        assert time.monotonic() - started >= 1.0
        if per_study:  # PostgreSQL: one lock per study
            with queue_lock(open_storage(url), "another study", timeout=5.0):
                pass
        else:  # SQLite: one lock per file, every study of it queues in turn
            with pytest.raises(SweepError, match="another process has been queueing study 'another study'"):
                with queue_lock(open_storage(url), "another study", timeout=0.3):
                    pass
        os.killpg(holder.pid, signal.SIGKILL)  # dies holding it: no release ran
        holder.wait()
        started = time.monotonic()
        with queue_lock(open_storage(url), "held", timeout=10.0):
            pass
        assert time.monotonic() - started < 2.0  # free at once: no stale-lock timeout to wait out
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()


def test_the_sqlite_lock_waits_for_its_holder_and_is_released_when_the_holder_is_killed(tmp_path):
    url = f"sqlite:///{tmp_path}/held.db"
    open_storage(url)
    check_lock_follows_its_holder(url, per_study=False)


def test_an_in_memory_store_queues_under_a_process_lock():
    store = open_storage("sqlite:///:memory:")
    with queue_lock(store, "a"):
        with pytest.raises(SweepError, match="another process has been queueing study 'a'"):
            with queue_lock(store, "a", timeout=0.2):
                pass
    with queue_lock(store, "a", timeout=0.2):
        pass


def _retry(url: str, start, out: str) -> None:
    start.wait()
    with open(out, "w") as done:
        done.write(" ".join(map(str, retry_failed(url, "race"))))


def test_retries_started_at_once_requeue_each_failed_design_once(tmp_path):
    from optuna.trial import TrialState

    url = f"sqlite:///{tmp_path}/retry.db"
    queue_sweep(resolve_space("S0"), "minilm", ["rte"], 30, 0, url, "race")
    store = open_storage(url)
    study = optuna.load_study(study_name="race", storage=store)
    for trial in study.get_trials():
        store.set_trial_state_values(trial._trial_id, TrialState.RUNNING)
        store.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    outs = [tmp_path / f"retried{i}.txt" for i in range(3)]
    running = [context.Process(target=_retry, args=(url, start, str(out))) for out in outs]
    for process in running:
        process.start()
    for process in running:
        process.join(timeout=120)
    assert [p.exitcode for p in running] == [0, 0, 0]
    retried = sorted(int(i) for out in outs for i in out.read_text().split())
    assert retried == list(range(30))  # each failed design re-queued by one of the three
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert Counter(design_index(t) for t in waiting) == {i: 1 for i in range(30)}
