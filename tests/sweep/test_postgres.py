"""PostgreSQL as the sweep store: worker processes sharing one study, and storage URLs that cannot work.

The server is a throwaway one started by the ``postgres_url`` fixture (``tests/sweep/postgres.py``).
On PostgreSQL, no SQLite write lock serializes the workers: Optuna's row lock alone must keep two of
them from taking the same queued trial.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState
from postgres import require_psycopg

from peftspace.sweep import SweepError, run_sweep, sweep_status
from peftspace.sweep.store import design_index, open_storage
from test_lock import SAMPLES as QUEUED, check_lock_follows_its_holder, race

SAMPLES = 9
WORKERS = 3
CLOSED = "127.0.0.1:1"  # nothing listens on port 1: the connection is refused at once


def test_three_worker_processes_on_one_study_run_every_design_exactly_once(postgres_url, data_dir, tiny, tmp_path):
    status = run_sweep("S0", "minilm", ["rte"], SAMPLES, workers=0, storage=postgres_url, study_name="three-workers",
                       schedule=tiny)
    assert status["trials"] == {"WAITING": SAMPLES}  # workers=0 only queues
    command = [sys.executable, "-m", "peftspace.cli", "worker", "--storage", postgres_url, "--study", "three-workers",
               "--data-dir", str(data_dir), "--threads", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    logs = [tmp_path / f"worker{i}.log" for i in range(WORKERS)]
    workers = []
    for log in logs:
        with open(log, "w") as out:
            workers.append(subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT))
    try:
        for worker in workers:
            worker.wait(timeout=300)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    outputs = [log.read_text() for log in logs]
    assert [w.returncode for w in workers] == [0] * WORKERS, "\n".join(outputs)

    trials = optuna.load_study(study_name="three-workers", storage=open_storage(postgres_url)).get_trials()
    assert Counter(t.state for t in trials) == {TrialState.COMPLETE: SAMPLES}  # nothing pruned as a second run
    assert sorted(design_index(t) for t in trials) == list(range(SAMPLES))
    # What each process says it trained (a trial taken twice is told COMPLETE only once, so the store alone
    # cannot show it): every trial exactly once over all workers, and by the worker the store names.
    told = re.compile(r"^trial (\d+) design \d+: error", re.MULTILINE)
    ran = {w.pid: [int(n) for n in told.findall(out)] for w, out in zip(workers, outputs)}
    assert sorted(n for numbers in ran.values() for n in numbers) == sorted(t.number for t in trials), outputs
    for trial in trials:
        _, pid = trial.user_attrs["worker"].rsplit(":", 1)
        assert trial.number in ran[int(pid)]
    assert sum(bool(numbers) for numbers in ran.values()) >= 2, ran  # they did share the queue
    status = sweep_status(postgres_url, "three-workers")
    assert status["duplicates"] == [] and status["done"] and status["designs"]["complete"] == SAMPLES


def test_sweeps_started_at_once_on_postgresql_queue_every_design_exactly_once(postgres_url, tmp_path):
    trials = race(postgres_url, tmp_path)
    assert Counter(design_index(t) for t in trials) == {i: 1 for i in range(QUEUED)}


def test_the_postgresql_lock_is_per_study_and_released_when_its_holder_is_killed(postgres_url):
    check_lock_follows_its_holder(postgres_url, per_study=True)


def test_a_plain_postgresql_url_opens_with_psycopg_alone(postgres_url):
    # The README's form: SQLAlchemy >= 2.1 picks psycopg (3) for postgresql://; psycopg2 is not required.
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    study = optuna.create_study(storage=open_storage(plain), study_name="plain-url")
    study.enqueue_trial({"x": 1})
    again = optuna.load_study(study_name="plain-url", storage=open_storage(postgres_url))
    assert [t.state for t in again.get_trials()] == [TrialState.WAITING]


def test_a_missing_database_on_a_running_server_is_named(postgres_url):
    with pytest.raises(SweepError) as error:
        open_storage(postgres_url.rsplit("/", 1)[0] + "/nosuchdb")
    assert 'database "nosuchdb" does not exist' in str(error.value)


def test_a_closed_port_is_one_error_naming_the_refusal_without_the_password():
    require_psycopg()  # without it, the error would be the missing driver's
    started = time.perf_counter()
    with pytest.raises(SweepError) as error:
        open_storage(f"postgresql+psycopg://u:secret@{CLOSED}/db")
    message = str(error.value)
    assert message.startswith(f"cannot open storage 'postgresql+psycopg://u:***@{CLOSED}/db': ")
    assert "Connection refused" in message and "secret" not in message
    assert time.perf_counter() - started < 15  # refused, not waiting out a timeout


@pytest.mark.parametrize("url, module, install", [
    (f"postgresql+psycopg2://u:secret@{CLOSED}/db", "psycopg2", "psycopg2-binary"),
    (f"mysql+pymysql://u:secret@{CLOSED}/db", "pymysql", "PyMySQL"),
])
def test_a_url_whose_driver_is_missing_says_what_to_install(url, module, install):
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here, so its absence cannot be shown")
    with pytest.raises(SweepError) as error:
        open_storage(url)
    message = str(error.value)
    assert f"its database driver {module!r} is not installed; pip install '{install}'" in message
    assert "secret" not in message


def test_the_cli_reports_an_unreachable_store_as_an_error_with_exit_code_2():
    require_psycopg()
    done = subprocess.run([sys.executable, "-m", "peftspace.cli", "status", "--storage", f"postgresql://u:secret@{CLOSED}/db",
                           "--study", "x"], check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output and "secret" not in output
    [message] = output.strip().splitlines()  # one line: errors are printed without wrapping
    assert message.startswith(f"error: cannot open storage 'postgresql://u:***@{CLOSED}/db': ")
    assert "Connection refused" in message and message.endswith("(many machines)")
