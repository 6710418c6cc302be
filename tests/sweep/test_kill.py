"""THE KILL TEST: a 12-design sweep killed with SIGKILL midway, then restarted, finishes every design once.

The whole process group (the sweep and its two workers) is killed while trials are finished and
others are running. The store then has RUNNING trials whose workers are gone; the restarted sweep
fails them as stale (heartbeat 1 s, grace 3 s) and re-runs their designs. The store's records prove
the outcome: 12 COMPLETE trials, one per design index; the trials finished before the kill are
untouched; each design that was in flight has exactly one FAIL (the killed attempt) and one COMPLETE
(its re-queued copy, which names the failed trial); every other design ran once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import optuna
from optuna.trial import TrialState

from peftspace.sweep import SweepError, sweep_status
from peftspace.sweep.store import design_index, open_storage

SAMPLES = 12


def _snapshot(url):
    try:
        study = optuna.load_study(study_name="kill", storage=open_storage(url))
    except (KeyError, SweepError):
        return []
    return study.get_trials()


def test_a_sweep_killed_with_sigkill_resumes_and_runs_every_design_exactly_once(tmp_path, data_dir, tiny_flags):
    url = f"sqlite:///{tmp_path}/kill.db"
    command = [sys.executable, "-m", "peftspace.cli", "sweep", "--space", "S0", "--model", "minilm", "--tasks", "rte",
               "--samples", str(SAMPLES), "--workers", "2", "--storage", url, "--study", "kill", "--data-dir", str(data_dir),
               "--heartbeat-interval", "1", "--grace-period", "3", *tiny_flags]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first.poll() is None:
            trials, now = _snapshot(url), datetime.now()
            started = [t for t in trials if t.state == TrialState.RUNNING and (now - t.datetime_start).total_seconds() < 0.4]
            if sum(t.state == TrialState.COMPLETE for t in trials) >= 3 and started:
                break  # a trial has just started (a trial takes about a second): it is still running at the kill
            time.sleep(0.05)
        assert first.poll() is None, "the sweep ended before it could be killed:\n" + (tmp_path / "first.log").read_text()
        os.killpg(first.pid, signal.SIGKILL)  # the sweep and its workers, at once, mid-trial
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    killed = _snapshot(url)
    finished = {t.number: (design_index(t), t.value, t.datetime_complete) for t in killed if t.state == TrialState.COMPLETE}
    in_flight = {t.number: design_index(t) for t in killed if t.state == TrialState.RUNNING}
    assert len(finished) >= 3 and in_flight and len(finished) < SAMPLES

    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, start_new_session=True)
    assert again.returncode == 0, again.stdout + again.stderr

    trials = _snapshot(url)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(design_index(t) for t in complete) == list(range(SAMPLES))  # 12 finished, each design once
    assert {t.state for t in trials} == {TrialState.COMPLETE, TrialState.FAIL}  # nothing left waiting or running
    for number, record in finished.items():  # finished before the kill: kept as they were, never run again
        assert (design_index(trials[number]), trials[number].value, trials[number].datetime_complete) == record
    for index in range(SAMPLES):
        attempts = [t for t in trials if design_index(t) == index]
        if index in in_flight.values():
            [failed] = [t for t in attempts if t.state == TrialState.FAIL]
            [done] = [t for t in attempts if t.state == TrialState.COMPLETE]
            assert failed.number in in_flight and done.system_attrs["failed_trial"] == failed.number
            assert len(attempts) == 2
        else:
            assert [t.state for t in attempts] == [TrialState.COMPLETE]
    status = sweep_status(url, "kill")
    assert status["duplicates"] == [] and status["designs"]["complete"] == SAMPLES and status["done"]
    assert "12 complete, 0 failed, 0 running, 0 waiting of 12 designs" in " ".join(again.stdout.split())
