"""The worker loop with trials stubbed out: failure streaks stop it, results carry validation errors."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

import peftspace.trial
from peftspace.design.presets import PRESETS
from peftspace.sweep import SweepError, queue_sweep, resolve_space, run_local_workers, run_worker, sweep_status
from peftspace.sweep.store import design_index, open_storage

DESIGNS = [PRESETS[name] for name in ("lora", "adapter", "bitfit", "lora", "adapter", "bitfit")]


def _queued(tmp_path, n=6, model="minilm", tasks=("rte",), name="w"):
    url = f"sqlite:///{tmp_path}/{name}.db"
    queue_sweep(resolve_space("S0"), model, list(tasks), None, 0, url, name, designs=DESIGNS[:n])
    return url


def _states(url, name="w"):
    trials = optuna.load_study(study_name=name, storage=open_storage(url)).get_trials()
    return [(design_index(t), t.state.name) for t in trials]


def record(score, validation=None, mid=None, status="ok", reason=None):
    """What ``run_trial`` hands back, cut to the keys the worker reads."""
    out = {"status": status, "reason": reason, "score": score, "validation_score": validation, "trainable": {"design": 7}}
    if mid is not None:
        out["mid_validation_score"] = mid
    return out


def stub(monkeypatch, outcome):
    """``run_trial`` replaced by ``outcome(seed, task)``: a record, or an exception to raise."""
    def run_trial(design, model, task, schedule, seed, *args, **kwargs):
        result = outcome(seed, task.spec.name)
        if isinstance(result, BaseException):
            raise result
        return result
    monkeypatch.setattr(peftspace.trial, "run_trial", run_trial)


def test_a_systemic_failure_stops_the_worker_after_k_trials_leaving_the_rest_waiting(tmp_path, data_dir, monkeypatch):
    url = _queued(tmp_path)
    stub(monkeypatch, lambda seed, task: RuntimeError("CUDA driver not found"))
    seen = []
    with pytest.raises(SweepError) as error:
        run_worker(url, "w", data_dir, max_consecutive_failures=3, on_trial=seen.append)
    message = str(error.value)
    assert message.startswith("stopped after 3 consecutive failed trials, all 3 with the same reason: "
                              "RuntimeError: CUDA driver not found (at ")
    assert message.endswith("; fix the cause and re-run (retry_failed / --retry-failed re-queues the failed designs)")
    assert [s["design_index"] for s in seen] == [0, 1, 2]
    assert _states(url) == [(0, "FAIL"), (1, "FAIL"), (2, "FAIL"), (3, "WAITING"), (4, "WAITING"), (5, "WAITING")]


def test_the_streak_names_the_last_of_differing_reasons_and_a_trial_that_ran_ends_it(tmp_path, data_dir, monkeypatch):
    url = _queued(tmp_path)
    # design i trains with seed i: 0 and 1 raise, 2 diverges, 3 and 4 raise, 5 finishes
    outcomes = {0: KeyError("a"), 1: KeyError("b"), 2: record(None, status="failed", reason="loss became nan at step 0"),
                3: ValueError("c"), 4: ValueError("d"), 5: record(60.0)}
    stub(monkeypatch, lambda seed, task: outcomes[seed])
    assert run_worker(url, "w", data_dir, max_consecutive_failures=3) == 6  # never 3 raised in a row
    assert sweep_status(url, "w")["designs"]["failed"] == 5

    url = _queued(tmp_path, name="again")
    with pytest.raises(SweepError, match=r"^stopped after 2 consecutive failed trials, the last: KeyError: 'b' \(at "):
        run_worker(url, "again", data_dir, max_consecutive_failures=2)
    assert [s for _, s in _states(url, "again")] == ["FAIL", "FAIL", "WAITING", "WAITING", "WAITING", "WAITING"]

    url = _queued(tmp_path, name="never")
    stub(monkeypatch, lambda seed, task: KeyError("always"))
    assert run_worker(url, "never", data_dir, max_consecutive_failures=None) == 6  # None: never stops
    with pytest.raises(SweepError, match="max_consecutive_failures=0 must be a positive integer, or None"):
        run_worker(url, "never", data_dir, max_consecutive_failures=0)


def test_results_carry_validation_errors_beside_the_test_error(tmp_path, data_dir, monkeypatch):
    from peftspace.sweep import finished_trials

    url = _queued(tmp_path, 3, tasks=("rte", "sst2"))
    scores = {"rte": (70.0, 60.0, 50.0), "sst2": (90.0, 80.0, 70.0)}  # test, validation, midpoint validation

    def outcome(seed, task):
        test, validation, mid = scores[task]
        if seed == 0:
            return record(test, validation, mid)
        if seed == 1:  # no midpoint score (a schedule without it), and rte scored without validation
            return record(test, None if task == "rte" else validation)
        return KeyError("design 2 breaks")

    stub(monkeypatch, outcome)
    assert run_worker(url, "w", data_dir) == 3
    trials = optuna.load_study(study_name="w", storage=open_storage(url)).get_trials()
    full, partial, failed = (t.user_attrs for t in trials)
    assert trials[0].value == full["error"] == 100 - (70 + 90) / 2  # the objective stays the test error
    assert full["validation_scores"] == {"rte": 60.0, "sst2": 80.0} and full["validation_error"] == 100 - (60 + 80) / 2
    assert full["mid_validation_scores"] == {"rte": 50.0, "sst2": 70.0} and full["mid_validation_error"] == 100 - (50 + 70) / 2
    assert partial["error"] == full["error"] and partial["validation_scores"] == {"rte": None, "sst2": 80.0}
    assert partial["validation_error"] is None and partial["mid_validation_error"] is None
    assert failed["status"] == "failed" and failed["failure"] == "raised"
    assert failed["validation_error"] is failed["mid_validation_error"] is failed["error"] is None
    rows = finished_trials(url, "w")
    assert [(r["validation_error"], r["mid_validation_error"]) for r in rows] == [(30.0, 40.0), (None, None)]
    assert rows[0]["validation_scores"] == {"rte": 60.0, "sst2": 80.0}


def test_local_workers_stop_on_a_model_that_fails_at_trial_time_saying_so_once(tmp_path, data_dir):
    url = _queued(tmp_path, model=str(tmp_path / "no-such-model"))  # explicit designs: queueing never loads the model
    with pytest.raises(SweepError) as error:
        run_local_workers(url, ["w"], data_dir, workers=2, threads=1, max_consecutive_failures=2)
    message = str(error.value)
    assert message.startswith("2 of 2 worker(s) stopped with an error: stopped after 2 consecutive failed trials, "
                              "all 2 with the same reason: ")
    assert message.count("consecutive failed trials") == 1 and message.count("fix the cause") == 1  # the two said the same
    assert "no-such-model" in message and message.endswith(f"finished trials are kept in {url}")
    states = [s for _, s in _states(url)]
    assert states.count("FAIL") == 4 and states.count("WAITING") == 2  # each worker stopped after its 2


def test_the_worker_command_stops_on_a_systemic_failure_with_one_error_line(tmp_path, data_dir, run_cli):
    url = _queued(tmp_path, model=str(tmp_path / "no-such-model"))
    code, out = run_cli("worker", "--storage", url, "--study", "w", "--data-dir", str(data_dir), "--threads", "1",
                        "--max-consecutive-failures", "2")
    [error] = [line for line in out.splitlines() if line.startswith("error:")]
    assert code == 2 and error.startswith("error: stopped after 2 consecutive failed trials, all 2 with the same reason: ")
    assert out.count("consecutive failed trials") == 1 and "Traceback" not in out
    assert [s for _, s in _states(url)] == ["FAIL", "FAIL", "WAITING", "WAITING", "WAITING", "WAITING"]


def test_the_sweep_command_passes_the_failure_limit_on(monkeypatch, run_cli, tmp_path):
    import peftspace.sweep

    given = []

    def run_sweep(*args, **kwargs):
        given.append(kwargs["max_consecutive_failures"])
        raise SweepError("stop here")

    monkeypatch.setattr(peftspace.sweep, "run_sweep", run_sweep)
    for flags, limit in (([], 5), (["--max-consecutive-failures", "3"], 3), (["--max-consecutive-failures", "0"], None)):
        code, out = run_cli("sweep", "--space", "S0", "--tasks", "rte", "--storage", f"sqlite:///{tmp_path}/x.db", *flags)
        assert code == 2 and "stop here" in out
    assert given == [5, 3, None]


def test_a_following_worker_runs_the_stages_a_discovery_queues_after_it_started(tmp_path, data_dir, monkeypatch, tiny):
    """discover --workers 0 --wait in one thread, a following worker in this one (trials stubbed): the worker
    picks up S2's study, which did not exist when it started, and stops once the discovery is done."""
    import hashlib
    import threading

    from peftspace.discover import run_discovery
    from peftspace.sweep.worker import discovery_done, follow_sweeps

    def outcome(seed, task):  # a reproducible score per trial seed, on every split
        value = 60.0 + int(hashlib.sha256(str(seed).encode()).hexdigest()[:6], 16) / 16 ** 6 * 20
        return record(value, validation=value, mid=value)

    stub(monkeypatch, outcome)
    url, result = f"sqlite:///{tmp_path}/follow.db", {}

    def discover():
        result["log"] = run_discovery("minilm", "rte", 2, stages=("grouping", "allocation"), name="f", storage=url,
                                      out_dir=tmp_path / "out", schedule=tiny, data_dir=data_dir, workers=0, wait=True,
                                      plan={"max_blocks": 2, "first_look": 2, "look_every": 2})

    thread = threading.Thread(target=discover)
    thread.start()
    seen = []
    ran = follow_sweeps(url, "f/*", data_dir, until=lambda: discovery_done(url, "f"), idle_timeout=120, poll=0.2,
                        on_trial=seen.append)
    thread.join(timeout=120)
    assert not thread.is_alive() and result["log"]["status"] == "done"
    stages = [e["study"] for e in result["log"]["stages"]]
    assert stages == ["f/S1", "f/S2"]
    complete = {name: sweep_status(url, name)["designs"]["complete"] for name in stages}
    assert ran == len(seen) == sum(complete.values()) and all(complete.values())  # both stages, every trial by this worker
    assert discovery_done(url, "f") and not discovery_done(url, "nothing-here")


def test_a_following_worker_with_nothing_to_do_stops_after_its_idle_timeout(tmp_path, data_dir):
    import time

    from peftspace.sweep.worker import follow_sweeps

    url = f"sqlite:///{tmp_path}/idle.db"
    started = time.monotonic()
    assert follow_sweeps(url, "nobody/*", data_dir, idle_timeout=0.5, poll=0.1) == 0
    assert time.monotonic() - started < 30
    with pytest.raises(SweepError, match="idle_timeout=-1 must be >= 0"):
        follow_sweeps(url, "nobody/*", data_dir, idle_timeout=-1)


def test_a_worker_opens_its_store_once_for_every_study_and_loads_no_data_for_finished_ones(tmp_path, data_dir, monkeypatch):
    """Three sweeps in one store: the store opened twice (plain, with the heartbeat), not four times per study;
    a second pass over the finished sweeps (what a follower does on every poll) loads no task at all."""
    import peftspace.sweep.worker as worker
    import peftspace.tasks

    url = f"sqlite:///{tmp_path}/many.db"
    for name in ("m1", "m2", "m3"):
        queue_sweep(resolve_space("S0"), "minilm", ["rte"], None, 0, url, name, designs=DESIGNS[:2])
    stub(monkeypatch, lambda seed, task: record(70.0))
    opened, loaded = [], []
    real_open, real_load = worker.open_storage, peftspace.tasks.load_task
    monkeypatch.setattr(worker, "open_storage", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    monkeypatch.setattr(peftspace.tasks, "load_task", lambda *a, **k: loaded.append(a[0]) or real_load(*a, **k))

    assert run_worker(url, ["m1", "m2", "m3"], data_dir) == 6
    assert len(opened) == 2 and loaded == ["rte"]
    assert all(sweep_status(url, name)["designs"]["complete"] == 2 for name in ("m1", "m2", "m3"))
    opened.clear(), loaded.clear()
    assert run_worker(url, ["m1", "m2", "m3"], data_dir) == 0
    assert len(opened) == 2 and loaded == []


def test_a_spawned_worker_ends_with_the_worker_s_exit_code_and_its_error_reaches_the_parent(tmp_path, data_dir,
                                                                                             monkeypatch):
    """The spawn target ends its process with ``os._exit``: 0 after a finished queue, 2 with the error sent
    to the parent when the store cannot be opened."""
    import multiprocessing

    from peftspace.sweep.worker import spawned_worker

    url = _queued(tmp_path, n=1)
    stub(monkeypatch, lambda seed, task: record(70.0))
    assert run_worker(url, "w", data_dir) == 1  # nothing left for the spawned one
    context = multiprocessing.get_context("spawn")
    errors = context.SimpleQueue()
    outcomes = []
    for storage in (url, f"sqlite:///{tmp_path}/no-such-dir/x.db"):
        process = context.Process(target=spawned_worker, args=(storage, ["w"], str(data_dir), 1, errors, 5, "cpu", {}))
        process.start()
        process.join(timeout=120)
        outcomes.append(process.exitcode)
    assert outcomes == [0, 2]
    message = errors.get()
    assert "cannot open storage" in message and "no-such-dir" in message and errors.empty()
