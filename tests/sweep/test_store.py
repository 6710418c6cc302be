"""The store without training: storage errors, the stored definition, and re-queueing dead trials."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from import_probe import run_probe
from peftspace.design.presets import PRESETS
from peftspace.sweep import Heartbeat, SweepDefinition, SweepError, run_sweep
from peftspace.sweep.store import DEFINITION_ATTR, check_definition, design_index, enqueue_designs, open_storage, reap_stale


def test_importing_the_sweep_package_loads_no_torch():
    assert run_probe("import peftspace.sweep", "peftspace.sweep.sweep_status") == {"attempts": [], "loaded": []}


@pytest.mark.parametrize("url, says", [
    ("nosuch://x", "unsupported backend 'nosuch'"),
    ("runs/sweep.txt", "is malformed"),
    ("postgresql://user:secret@127.0.0.1:1/db", "cannot open storage 'postgresql://user:***@127.0.0.1:1/db': "),
    ("sqlite:////no/such/dir/sweep.db", "cannot open storage"),
])
def test_a_bad_storage_url_is_one_clear_error_at_once(url, says):
    started = time.perf_counter()
    with pytest.raises(SweepError) as error:
        open_storage(url)
    assert says in str(error.value)
    assert "secret" not in str(error.value)
    if "postgresql" not in url:
        assert "use sqlite:///path/to/file.db" in str(error.value)  # the forms that work
    assert time.perf_counter() - started < 15


def _study(tmp_path, heartbeat=None, name="s"):
    store = open_storage(f"sqlite:///{tmp_path}/store.db", heartbeat)
    return optuna.create_study(storage=store, study_name=name, load_if_exists=True), store


def test_a_different_sweep_on_the_same_study_is_refused_naming_the_study_and_every_difference(tmp_path):
    study, _ = _study(tmp_path)
    first = SweepDefinition(space={"name": "S0"}, model="minilm", tasks=("rte",), samples=4, seed=0, schedule={"max_steps": 2})
    assert check_definition(study, first, "sqlite:///x.db") is True
    study.set_user_attr(DEFINITION_ATTR, first.to_dict())
    assert check_definition(study, first, "sqlite:///x.db") is False  # the same sweep continues
    other = SweepDefinition(space={"name": "S1"}, model="minilm", tasks=("rte",), samples=5, seed=0, schedule={"max_steps": 2})
    with pytest.raises(SweepError) as error:
        check_definition(study, other, "sqlite:///x.db")
    message = str(error.value)
    assert "study 's'" in message and "holds a different sweep" in message
    assert "samples: stored 4, given 5" in message and "space.name: stored \"S0\", given \"S1\"" in message and "model" not in message.split("differences")[1]


def test_a_sweep_stored_before_the_speedups_resumes_with_the_flags_it_ran_with(tmp_path):
    from peftspace.schedule import Schedule

    study, _ = _study(tmp_path)
    old = Schedule(max_steps=2).to_dict()
    del old["precision"], old["bucket_window"], old["frozen_bottom"], old["fast_dropout"], old["score_validation"]
    study.set_user_attr(DEFINITION_ATTR, SweepDefinition({"name": "S0"}, "minilm", ("rte",), 4, 0, old).to_dict())
    as_it_ran = Schedule(max_steps=2, precision="fp32", bucket_window=0, frozen_bottom="off", fast_dropout=False)
    assert check_definition(study, SweepDefinition({"name": "S0"}, "minilm", ("rte",), 4, 0, as_it_ran.to_dict()), "x") is False
    today = SweepDefinition({"name": "S0"}, "minilm", ("rte",), 4, 0, Schedule(max_steps=2).to_dict())
    with pytest.raises(SweepError, match='schedule.precision: stored "fp32", given "auto"; schedule.bucket_window: stored 0, given 50; '
                                         'schedule.fast_dropout: stored false, given true$'):
        check_definition(study, today, "x")
    assert Schedule.from_stored(old) == as_it_ran  # what a worker of the old sweep trains with


def test_run_sweep_refuses_a_mismatched_rerun(tmp_path):
    url = f"sqlite:///{tmp_path}/sweep.db"
    run_sweep("S0", "minilm", ["rte"], 3, workers=0, storage=url, study_name="mine")
    for changes in ({"samples": 4}, {"space": "S1"}, {"seed": 1}):
        arguments = {"space": "S0", "samples": 3, **changes}
        with pytest.raises(SweepError, match="study 'mine' .* holds a different sweep"):
            run_sweep(arguments.pop("space"), "minilm", ["rte"], workers=0, storage=url, study_name="mine", **arguments)
    status = run_sweep("S0", "minilm", "rte", 3, workers=0, storage=url, study_name="mine")
    assert status["trials"] == {"WAITING": 3}  # queued once, however often it is re-run


def test_a_space_that_cannot_be_sampled_stores_nothing(tmp_path):
    from peftspace.design import DesignError
    from peftspace.design.space import DesignSpace

    url = f"sqlite:///{tmp_path}/sweep.db"
    tiny = DesignSpace("tiny", groupings=("uniform",), allocations=("uniform",), tuned="all", assignment=("L", "L", "L", "L"))
    with pytest.raises(DesignError, match="found only 1 distinct feasible designs of 2"):
        run_sweep(tiny, "minilm", ["rte"], 2, workers=0, storage=url, study_name="mine")
    status = run_sweep(tiny, "minilm", ["rte"], 1, workers=0, storage=url, study_name="mine")  # so it can be fixed
    assert status["trials"] == {"WAITING": 1}


def _enqueued(study, n=2):
    designs = [PRESETS["lora"], PRESETS["adapter"], PRESETS["bitfit"]][:n]
    study.set_user_attr("peftspace_sweep", {})
    enqueue_designs(study, designs, seed=10)
    return designs


def test_a_trial_whose_worker_died_is_requeued_with_its_design(tmp_path):
    heartbeat = Heartbeat(interval=1, grace_period=1, max_retry=2)
    study, store = _study(tmp_path, heartbeat)
    designs = _enqueued(study)
    with pytest.warns(UserWarning):
        trial = study.ask()
    assert trial.suggest_int("design_index", 0, 1) == 0
    store.record_heartbeat(trial._trial_id)
    trial.set_user_attr("attempt", trial.number)
    assert reap_stale(study, heartbeat) == 0  # still beating
    time.sleep(2.5)  # ... then silent: the worker was killed
    assert reap_stale(study, heartbeat) == 1
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING, TrialState.WAITING]
    copy = trials[2]
    assert design_index(copy) == 0 and copy.params == {"design_index": 0}
    assert copy.system_attrs["fixed_params"] == {"design_index": 0} and copy.system_attrs["failed_trial"] == 0
    assert copy.user_attrs["design"] == designs[0].to_dict() and copy.user_attrs["seed"] == 10


def test_a_trial_killed_before_its_first_heartbeat_is_requeued_too(tmp_path):
    heartbeat = Heartbeat(interval=1, grace_period=1)
    study, _ = _study(tmp_path, heartbeat)
    _enqueued(study)
    with pytest.warns(UserWarning):
        study.ask()  # popped, then killed before it could beat: Optuna alone never sees it as stale
    time.sleep(1.5)
    assert reap_stale(study, heartbeat) == 1
    assert [design_index(t) for t in study.get_trials(states=(TrialState.WAITING,))] == [1, 0]


def test_the_heartbeat_thread_keeps_a_long_trial_alive(tmp_path):
    from peftspace.sweep.worker import _Heartbeat

    heartbeat = Heartbeat(interval=1, grace_period=2)
    study, store = _study(tmp_path, heartbeat)
    _enqueued(study, 1)
    with pytest.warns(UserWarning):
        trial = study.ask()
    with _Heartbeat(store, trial._trial_id, heartbeat.interval) as beating:
        trial.set_user_attr("attempt", trial.number)
        time.sleep(3.5)  # longer than the grace period: only the thread's beats keep it alive
        assert reap_stale(study, heartbeat) == 0
    assert not beating.thread.is_alive()
    time.sleep(2.5)
    assert reap_stale(study, heartbeat) == 1


def test_heartbeat_settings_are_checked():
    with pytest.raises(SweepError, match="heartbeat interval=0 must be a positive integer"):
        Heartbeat(interval=0)


def _pop_all(url: str, out: str, start) -> None:
    """A worker's queue loop without training: pop, tell, note the trial (run in spawned processes)."""
    from peftspace.sweep.worker import _pop

    store = open_storage(url, Heartbeat(interval=1, grace_period=60))
    study = optuna.load_study(study_name="queue", storage=store)
    start.wait()  # all together, for the most contention
    taken = []
    while (trial := _pop(study, store)) is not None:
        taken.append(trial.number)
        study.tell(trial, 0.0)
    with open(out, "w") as f:
        f.write(" ".join(map(str, taken)))


def test_concurrent_workers_on_sqlite_never_take_the_same_trial(tmp_path):
    import multiprocessing

    url = f"sqlite:///{tmp_path}/queue.db"
    study = optuna.create_study(storage=open_storage(url), study_name="queue")
    for i in range(100):
        study.enqueue_trial({"x": i})
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    outs = [tmp_path / f"taken{i}.txt" for i in range(4)]
    processes = [context.Process(target=_pop_all, args=(url, str(out), start)) for out in outs]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * 4  # without serialized transactions: "Cannot tell a COMPLETE trial"
    taken = [int(n) for out in outs for n in out.read_text().split()]
    assert sorted(taken) == list(range(100))  # each trial taken exactly once
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials())


def _popped(tmp_path, heartbeat):
    """A design taken by a worker's ``_pop`` (heartbeat and ``popped_at_utc`` recorded), then the worker is gone."""
    from peftspace.sweep.worker import _pop

    study, store = _study(tmp_path, heartbeat)
    _enqueued(study, 1)
    trial = _pop(study, store)
    return study, store, trial


def test_a_trial_popped_long_ago_by_utc_is_reaped_whatever_its_heartbeat(tmp_path):
    from datetime import datetime, timedelta, timezone

    heartbeat = Heartbeat(interval=30, grace_period=60)
    study, store, trial = _popped(tmp_path, heartbeat)
    stamp = datetime.fromisoformat(study.trials[0].user_attrs["popped_at_utc"])
    assert stamp.tzinfo is not None and abs(datetime.now(timezone.utc) - stamp) < timedelta(seconds=30)
    assert reap_stale(study, heartbeat) == 0  # just popped
    trial.set_user_attr("popped_at_utc", (datetime.now(timezone.utc) - timedelta(hours=3)).isoformat())
    assert reap_stale(study, heartbeat) == 1  # its heartbeat is fresh, but it never got to its first trial step
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.WAITING]


def test_a_trial_started_on_a_machine_in_another_time_zone_is_not_reaped(tmp_path):
    from datetime import timedelta

    from sqlalchemy import text

    heartbeat = Heartbeat(interval=30, grace_period=60)
    study, store, trial = _popped(tmp_path, heartbeat)
    start = study.trials[0].datetime_start
    with store.engine.begin() as connection:  # Optuna's naive local time, as a machine 5 hours behind writes it
        connection.execute(text("UPDATE trials SET datetime_start = :start WHERE trial_id = :id"),
                           {"start": start - timedelta(hours=5), "id": trial._trial_id})
    assert study.trials[0].datetime_start == start - timedelta(hours=5)
    assert reap_stale(study, heartbeat) == 0  # popped_at_utc is recent: the time zone is no matter
    trial.set_user_attr("popped_at_utc", None)  # as a trial popped by an older worker
    assert reap_stale(study, heartbeat) == 1  # the naive fallback takes it for 5 hours old
