"""Sweeps on real data (MiniLM, RTE/SST-2, a tiny schedule): every design once, failures kept, re-runs no-ops."""

from __future__ import annotations

import math
import sys
from dataclasses import replace

import optuna
import pytest
from optuna.trial import TrialState

from peftspace.sweep import finished_trials, retry_failed, run_sweep, run_worker, sweep_status
from peftspace.sweep.store import design_index, open_storage


def _trials(url, name):
    return optuna.load_study(study_name=name, storage=open_storage(url)).get_trials()


def test_a_sweep_runs_every_design_exactly_once_and_a_rerun_is_a_no_op(tmp_path, data_dir, tiny):
    url = f"sqlite:///{tmp_path}/sweep.db"
    seen = []
    status = run_sweep("S0", "minilm", ["rte", "sst2"], 3, seed=5, workers=1, storage=url, study_name="s0", schedule=tiny,
                       data_dir=data_dir, progress=seen.append, threads=1)
    assert status["designs"] == {"complete": 3, "running": 0, "waiting": 0, "cancelled": 0, "failed": 0, "missing": 0,
                                 "total": 3}
    assert status["duplicates"] == [] and status["done"] and seen and seen[-1]["complete"] == 3
    trials = _trials(url, "s0")
    assert sorted(design_index(t) for t in trials) == [0, 1, 2] and {t.state for t in trials} == {TrialState.COMPLETE}
    for trial in trials:
        attrs, index = trial.user_attrs, design_index(trial)
        assert trial.params == {"design_index": index} and attrs["seed"] == 5 + index and attrs["status"] == "ok"
        assert set(attrs["scores"]) == set(attrs["tasks"]) == {"rte", "sst2"}
        assert math.isclose(trial.value, attrs["error"]) and math.isclose(attrs["error"], 100 - sum(attrs["scores"].values()) / 2)
        assert attrs["average_score"] == pytest.approx(100 - attrs["error"])
        assert attrs["trainable"] == attrs["tasks"]["rte"]["trainable"]["design"] > 0 and attrs["wall_time_s"] > 0
        assert attrs["design"]["name"] == "S0" and attrs["tasks"]["rte"]["metrics"]["test"]["accuracy"] >= 0
        assert status["best_errors"][index] == trial.value
        validation = {task: attrs["tasks"][task]["validation_score"] for task in ("rte", "sst2")}
        assert attrs["validation_scores"] == validation and None not in validation.values()  # scored by default
        assert attrs["validation_error"] == pytest.approx(100 - sum(validation.values()) / 2)
        middle = [attrs["tasks"][task].get("mid_validation_score") for task in ("rte", "sst2")]
        assert attrs["mid_validation_error"] == (None if None in middle else pytest.approx(100 - sum(middle) / 2))
    rows = finished_trials(url, "s0")
    assert [row["validation_error"] for row in rows] == [t.user_attrs["validation_error"] for t in trials]
    again = run_sweep("S0", "minilm", "rte,sst2", 3, seed=5, workers=1, storage=url, study_name="s0", schedule=tiny,
                      data_dir=data_dir)
    assert [(t.number, t.state, t.value) for t in _trials(url, "s0")] == [(t.number, t.state, t.value) for t in trials]
    assert again["designs"] == status["designs"]


@pytest.fixture
def queued(tmp_path, tiny):
    def make(name, samples, schedule=tiny):
        url = f"sqlite:///{tmp_path}/{name}.db"
        run_sweep("S0", "minilm", ["rte"], samples, workers=0, storage=url, study_name=name, schedule=schedule)
        return url
    return make


def test_a_trial_that_raises_is_failed_with_its_reason_the_sweep_goes_on_and_it_can_be_retried(queued, data_dir, monkeypatch,
                                                                                                one_thread):
    import peftspace.trial

    url = queued("raises", 3)
    real = peftspace.trial.run_trial

    def flaky(design, model, task, schedule, seed, *args, **kwargs):
        if seed == 1:  # design 1
            raise RuntimeError("boom in design 1")
        return real(design, model, task, schedule, seed, *args, **kwargs)

    monkeypatch.setattr(peftspace.trial, "run_trial", flaky)
    assert run_worker(url, "raises", data_dir, threads=one_thread) == 3
    status = sweep_status(url, "raises")
    assert status["designs"]["complete"] == 2 and status["designs"]["failed"] == 1 and status["done"]
    [failure] = status["failures"]
    assert failure["design_index"] == 1 and failure["reason"].startswith("RuntimeError: boom in design 1 (at ")
    monkeypatch.setattr(peftspace.trial, "run_trial", real)
    assert retry_failed(url, "raises") == [1]
    assert run_worker(url, "raises", data_dir, threads=one_thread) == 1
    status = sweep_status(url, "raises")
    assert status["designs"]["complete"] == 3 and status["failures"] == [] and status["duplicates"] == []
    states = sorted((design_index(t), t.state.name) for t in _trials(url, "raises"))
    assert states == [(0, "COMPLETE"), (1, "COMPLETE"), (1, "FAIL"), (2, "COMPLETE")]  # the failure and its reason stay
    assert retry_failed(url, "raises") == []  # finished designs are never re-queued


def test_a_diverging_trial_is_failed_with_its_reason(queued, data_dir, one_thread, tiny):
    url = queued("diverges", 1, replace(tiny, learning_rate=math.inf))
    assert run_worker(url, "diverges", data_dir, threads=one_thread) == 1
    [trial] = _trials(url, "diverges")
    assert trial.state == TrialState.FAIL and trial.user_attrs["status"] == "failed"
    assert trial.user_attrs["reason"].startswith("rte: loss became nan")
    assert sweep_status(url, "diverges")["failures"][0]["reason"] == trial.user_attrs["reason"]


def test_the_cli_gives_one_clear_error_for_a_malformed_space_or_storage(tmp_path, monkeypatch, capsys):
    from peftspace import cli

    bad = tmp_path / "space.yaml"
    bad.write_text("name: mine\ngroupings: [zigzag]\nbudget_fraction: 2\n")
    for args, says in ((["--space", str(bad)], "2 problems"), (["--space", "S9"], "neither a built-in space"),
                       (["--space", "S0", "--storage", "nosuch://x"], "unsupported backend 'nosuch'")):
        monkeypatch.setattr(sys, "argv", ["peftspace", "sweep", "--tasks", "rte", "--samples", "2", *args])
        with pytest.raises(SystemExit) as done:
            cli.main()
        out = capsys.readouterr().out
        assert done.value.code == 2 and says in out and "Traceback" not in out


def test_the_worker_and_status_commands(queued, data_dir, monkeypatch, capsys, one_thread):
    import json

    from peftspace import cli

    url = queued("cli", 2)
    outputs = []
    for args in (["worker", "--storage", url, "--study", "cli", "--data-dir", str(data_dir), "--threads", "1"],
                 ["status", "--storage", url, "--study", "cli", "--json"],
                 ["status", "--storage", url, "--study", "nosuch"], ["status", url.removeprefix("sqlite:///")]):
        monkeypatch.setattr(sys, "argv", ["peftspace", *args])
        try:
            cli.main()
            code = 0
        except SystemExit as done:
            code = done.code
        outputs.append((code, capsys.readouterr().out))
    (code, out), (_, as_json), (missing, says), (_, only) = outputs
    assert code == 0 and "this worker ran 2 trial(s)" in out and "trial 0 design 0: error" in out
    assert json.loads(as_json)["designs"]["complete"] == 2
    assert missing == 2 and "no sweep 'nosuch'" in says and "sweeps there: ['cli']" in says
    assert only.startswith("study cli in ") and "2 complete" in only  # the store's only sweep, from the .db path
