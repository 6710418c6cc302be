"""Sweeps of designs given explicitly (a racing discovery's stage): extras, cancelling the waiting, outcomes per design."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from peftspace.design.presets import PRESETS
from peftspace.sweep import SweepError, cancel_waiting, design_outcomes, queue_sweep, resolve_space, run_worker, sweep_status
from peftspace.sweep.store import DEFINITION_ATTR, design_index, open_storage
from peftspace.sweep.worker import _pop, _tell
from test_worker import record, stub

DESIGNS = [PRESETS["lora"], PRESETS["adapter"], PRESETS["bitfit"], PRESETS["adapter"]]
EXTRAS = [{"block": 0, "option": "spindle"}, {"block": 0, "option": "uniform", "seed": 99},
          {"block": 1, "option": "spindle"}, {"block": 1, "option": "uniform"}]


def _queue(url, designs=DESIGNS, extras=EXTRAS, samples=None, name="stage"):
    return queue_sweep(resolve_space("S1"), "minilm", ["rte"], samples, 5, url, name, designs=designs, extras=extras)


def _study(url, name="stage"):
    store = open_storage(url)
    return optuna.load_study(study_name=name, storage=store), store


def test_the_given_designs_are_queued_in_order_with_their_extras_and_seeds(tmp_path):
    url = f"sqlite:///{tmp_path}/x.db"
    _queue(url)
    study, _ = _study(url)
    trials = study.get_trials()
    assert [design_index(t) for t in trials] == [0, 1, 2, 3] and {t.state for t in trials} == {TrialState.WAITING}
    assert [t.user_attrs["design"] for t in trials] == [d.to_dict() for d in DESIGNS]
    assert [t.user_attrs["seed"] for t in trials] == [5, 99, 7, 8]  # seed + i, unless the extras say
    assert [(t.user_attrs["block"], t.user_attrs["option"]) for t in trials] == [(0, "spindle"), (0, "uniform"),
                                                                                  (1, "spindle"), (1, "uniform")]
    definition = study.user_attrs[DEFINITION_ATTR]
    assert definition["samples"] == 4 and definition["space"]["name"] == "S1" and len(definition["designs_sha256"]) == 64
    _queue(url, samples=4)  # the same stage again: nothing more is queued
    assert len(study.get_trials()) == 4


@pytest.mark.parametrize("changes, says", [
    ({"designs": DESIGNS[::-1], "extras": EXTRAS[::-1]}, "designs_sha256: stored \""),
    ({"extras": [{**EXTRAS[0], "seed": 1}, *EXTRAS[1:]]}, "designs_sha256: stored \""),
    ({"designs": DESIGNS[:3], "extras": EXTRAS[:3]}, "samples: stored 4, given 3"),
])
def test_a_rerun_with_other_designs_is_refused(tmp_path, changes, says):
    url = f"sqlite:///{tmp_path}/x.db"
    _queue(url)
    with pytest.raises(SweepError, match="holds a different sweep") as error:
        _queue(url, **changes)
    assert says in str(error.value)
    with pytest.raises(SweepError, match=r"designs_sha256: stored \"[0-9a-f]{64}\", given null"):  # nor sampled instead
        queue_sweep(resolve_space("S1"), "minilm", ["rte"], 4, 5, url, "stage")


def test_bad_designs_and_extras_are_every_problem_at_once(tmp_path):
    url = f"sqlite:///{tmp_path}/x.db"
    with pytest.raises(SweepError) as error:
        _queue(url, samples=3, extras=[{"block": 0, "error": 1}, "spindle", {"seed": "7"}])
    message = str(error.value)
    assert message.startswith("5 problem(s) with the designs given: ")
    for says in ("samples=3 but 4 designs were given; pass samples=None or 4", "3 extras for 4 designs",
                 "extras[0] uses the reserved keys ['error']", "extras[1] is a str, not a dict",
                 "extras[2]['seed']='7' must be an integer"):
        assert says in message
    with pytest.raises(SweepError, match="pass designs=\\[...\\] with them"):
        queue_sweep(resolve_space("S1"), "minilm", ["rte"], 4, 0, url, "stage", extras=EXTRAS)
    assert optuna.get_all_study_names(open_storage(url)) == []  # nothing was stored


def test_a_cut_short_queueing_of_given_designs_resumes(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/x.db"
    real, calls = optuna.Study.enqueue_trial, []

    def dies_at_the_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "enqueue_trial", dies_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        _queue(url)
    monkeypatch.setattr(optuna.Study, "enqueue_trial", real)
    assert [row["state"] for row in design_outcomes(url, "stage")] == ["waiting", "waiting", "missing", "missing"]
    _queue(url)
    study, _ = _study(url)
    assert [design_index(t) for t in study.get_trials()] == [0, 1, 2, 3]
    assert study.get_trials()[3].user_attrs["option"] == "uniform"


def test_cancelling_prunes_only_waiting_trials_and_workers_never_run_them(tmp_path):
    url = f"sqlite:///{tmp_path}/x.db"
    _queue(url)
    study, store = _study(url)
    running = _pop(study, store)  # design 0: taken by a worker
    done = _pop(study, store)  # design 1: finished
    _tell(study, done, TrialState.COMPLETE, {}, 20.0)
    assert cancel_waiting(url, "stage", [0, 1, 2, 7], "option spindle eliminated after block 0") == [2]
    states = {design_index(t): t.state for t in study.get_trials()}
    assert states == {0: TrialState.RUNNING, 1: TrialState.COMPLETE, 2: TrialState.PRUNED, 3: TrialState.WAITING}
    pruned = study.get_trials()[2]
    assert pruned.user_attrs["reason"] == "option spindle eliminated after block 0" and pruned.user_attrs["cancelled"] is True
    assert _pop(study, store).number == 3 and _pop(study, store) is None  # the cancelled one is never taken
    assert running.number == 0 and cancel_waiting(url, "stage", [2, 3], "again") == []  # nothing waits any more
    counts = sweep_status(url, "stage")["designs"]
    assert counts["cancelled"] == 1 and counts["running"] == 2 and counts["complete"] == 1


def test_a_trial_cancelled_between_the_listing_and_the_taking_is_skipped(tmp_path, monkeypatch):
    import peftspace.sweep.worker as worker

    url = f"sqlite:///{tmp_path}/x.db"
    _queue(url, DESIGNS[:1], EXTRAS[:1])
    study, store = _study(url)
    real = worker.take_waiting

    def cancelled_first(store_, trial_id):  # _pop has listed the trial as WAITING; now a racing discovery cancels it
        assert cancel_waiting(url, "stage", [0], "eliminated") == [0]
        return real(store_, trial_id)

    monkeypatch.setattr(worker, "take_waiting", cancelled_first)
    assert _pop(study, store) is None
    [trial] = study.get_trials()
    assert trial.state == TrialState.PRUNED and trial.user_attrs["reason"] == "eliminated"


def test_design_outcomes_is_one_row_per_design_with_results_reasons_and_extras(tmp_path, data_dir, monkeypatch):
    url = f"sqlite:///{tmp_path}/x.db"
    designs, extras = DESIGNS + [PRESETS["lora"]], EXTRAS + [{"block": 2, "option": "spindle"}]
    _queue(url, designs, extras)
    study, store = _study(url)
    assert cancel_waiting(url, "stage", [3], "uniform eliminated") == [3]
    by_seed = {5: record(70.0, 60.0, 50.0), 99: RuntimeError("boom")}  # design 0 finishes, design 1 raises
    stub(monkeypatch, lambda seed, task: by_seed[seed])
    assert run_worker(url, "stage", data_dir, max_trials=2) == 2
    running = _pop(study, store)  # design 2: running elsewhere; design 4 waits
    rows = design_outcomes(url, "stage")
    assert [row["design_index"] for row in rows] == [0, 1, 2, 3, 4]
    assert [row["state"] for row in rows] == ["complete", "failed", "running", "cancelled", "waiting"]
    assert [row["trial"] for row in rows] == [0, 1, running.number, 3, 4]
    assert [(row["block"], row["option"]) for row in rows] == [(e["block"], e["option"]) for e in extras]
    assert [row["seed"] for row in rows] == [5, 99, 7, 8, 9] and rows[4]["design"] == PRESETS["lora"].to_dict()
    complete = rows[0]
    assert complete["error"] == 30.0 and complete["validation_error"] == 40.0 and complete["mid_validation_error"] == 50.0
    assert complete["scores"] == {"rte": 70.0} and complete["validation_scores"] == {"rte": 60.0}
    assert complete["trainable"] == 7 and complete["wall_time_s"] >= 0 and complete["reason"] is None
    assert rows[1]["reason"].startswith("RuntimeError: boom (at ") and rows[1]["error"] is None
    assert rows[3]["reason"] == "uniform eliminated" and rows[3]["error"] is None
    assert rows[2]["reason"] is rows[4]["reason"] is rows[4]["scores"] is None
