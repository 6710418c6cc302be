"""Stage-wise discovery on real data (MiniLM, RTE + MRPC, a tiny schedule): decisions follow the store, resume re-runs nothing."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from peftspace.analysis import edf
from peftspace.design import Design
from peftspace.discover import _stage_plan, read_discovery
from peftspace.report import build_report
from peftspace.sweep import SweepError, finished_trials
from peftspace.sweep.store import open_storage


def _trial_count(url) -> int:
    store = open_storage(url)
    return sum(len(optuna.load_study(study_name=name, storage=store).get_trials()) for name in optuna.get_all_study_names(store))


def test_stage_plan_labels_one_stage_per_component_and_one_per_group_for_strategies():
    assert _stage_plan(("grouping", "allocation"), 4) == [("S1", "grouping", None), ("S2", "allocation", None)]
    assert _stage_plan(("tuned", "strategies"), 3) == [("S1", "tuned", None), ("S2.G1", "strategies", 0),
                                                       ("S2.G2", "strategies", 1), ("S2.G3", "strategies", 2)]


def test_a_two_stage_discovery_decides_from_the_store_writes_its_design_and_resumes(tmp_path, data_dir, tiny_flags, run_cli):
    url, out = f"sqlite:///{tmp_path}/discover.db", tmp_path / "out"
    command = ["discover", "--model", "minilm", "--tasks", "rte,mrpc", "--samples-per-space", "2", "--protocol", "paper", "--stages",
               "grouping,allocation", "--name", "two", "--storage", url, "--out", str(out), "--workers", "1",
               "--data-dir", str(data_dir), *tiny_flags]
    code, printed = run_cli(*command)
    assert code == 0, printed
    log = read_discovery(url, "two")
    assert log == json.loads((out / "decisions.json").read_text())
    assert log["status"] == "done" and [e["stage"] for e in log["stages"]] == ["S1", "S2"]
    grouping, allocation = log["stages"]
    assert sorted(grouping["options"]) == ["bottleneck", "decreasing", "increasing", "spindle", "uniform"]
    assert sorted(allocation["options"]) == ["decreasing", "increasing", "uniform"]

    for entry in log["stages"]:
        # the paper protocol ranks by validation errors (selection never reads the test split)
        errors = {option: [row["validation_error"] for row in finished_trials(url, info["study"])]
                  for option, info in entry["options"].items()}
        assert all(len(e) == 2 for e in errors.values())  # every design of every option finished
        for option, info in entry["options"].items():  # each option's sweep holds only designs of that option
            for row in finished_trials(url, info["study"]):
                key = "grouping" if entry["component"] == "grouping" else "allocation"
                assert row["design"][key] == option and row["design"]["budget_fraction"] == 0.005
        # the decision is the ranking of exactly these errors, computed here with numpy alone: order by mean, then
        # median, then name; each option's n, mean and median; the best-vs-runner-up difference of means
        order = sorted(errors, key=lambda o: (np.mean(errors[o]), np.median(errors[o]), o))
        ranking = entry["ranking"]
        assert [o["name"] for o in ranking["options"]] == order and entry["winner"] == order[0] == ranking["best"]
        for summary in ranking["options"]:
            values = errors[summary["name"]]
            assert summary["n"] == len(values)
            assert summary["mean"] == pytest.approx(np.mean(values)) and summary["median"] == pytest.approx(np.median(values))
        gap = np.mean(errors[order[1]]) - np.mean(errors[order[0]])
        difference = ranking["difference"]
        assert difference["estimate"] == pytest.approx(gap) and difference["low"] <= gap <= difference["high"]
        assert entry["verdict"] == ("decided" if difference["low"] > 0 else "undecided")
    # stage 2 narrows the space stage 1 left: every allocation option keeps the grouping winner
    assert all(info["space"]["groupings"] == [grouping["winner"]] for info in allocation["options"].values())
    assert allocation["space"]["groupings"] == [grouping["winner"]]
    assert allocation["space"]["allocations"] == [allocation["winner"]]

    design = Design.load(out / "two.yaml")
    assert design.grouping == grouping["winner"] and design.allocation == allocation["winner"]
    assert design.to_dict() == log["final_design"]
    winner_rows = finished_trials(url, allocation["options"][allocation["winner"]]["study"])
    best_of_winner = min(winner_rows, key=lambda row: row["validation_error"])
    assert {k: v for k, v in design.to_dict().items() if k not in ("name", "description")} == \
        {k: v for k, v in best_of_winner["design"].items() if k not in ("name", "description")}
    all_rows = [row for entry in log["stages"] for info in entry["options"].values() for row in finished_trials(url, info["study"])]
    assert log["best"]["error"] == min(row["error"] for row in all_rows)
    assert "S1" in printed and grouping["winner"] in printed

    report = build_report(url, tmp_path / "report")  # renders with a curve per option of every stage
    assert report.index.is_file()
    for entry in log["stages"]:
        [plot] = [p for p in report.plots if p.owner == "two" and p.stage == entry["stage"] and p.kind == "edf"]
        assert set(plot.curves) == set(entry["options"]) and (tmp_path / "report" / plot.file).stat().st_size > 0
        for option, info in entry["options"].items():
            x, y = edf([row["error"] for row in finished_trials(url, info["study"])])
            assert np.array_equal(plot.curves[option][0], x) and np.array_equal(plot.curves[option][1], y)

    trials = _trial_count(url)
    assert trials == 2 * 8  # 16 designs, each trained once
    code, again = run_cli(*command)  # resume of a finished discovery: nothing re-runs
    assert code == 0, again
    assert _trial_count(url) == trials and read_discovery(url, "two") == log

    changed = [c if c != "2" else "3" for c in command]  # other samples per space under the same name: refused
    code, refused = run_cli(*changed)
    assert code == 2 and "samples_per_space: stored 2, given 3" in " ".join(refused.split())
    assert _trial_count(url) == trials


def test_bad_discovery_arguments_are_clear_errors(tmp_path, data_dir):
    from peftspace.discover import run_discovery

    with pytest.raises(SweepError, match="stages"):
        run_discovery("minilm", "rte", 2, stages=("grouping", "colour"), storage=f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(SweepError, match="samples_per_space"):
        run_discovery("minilm", "rte", 1, storage=f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(SweepError, match="data directory"):
        run_discovery("minilm", "rte", 2, data_dir=tmp_path / "missing", storage=f"sqlite:///{tmp_path}/x.db")


def test_a_discovery_trained_by_workers_elsewhere_waits_for_them_then_goes_on(tmp_path, data_dir, tiny, run_cli):
    from peftspace.discover import run_discovery
    from peftspace.sweep.store import matching_sweeps

    url = f"sqlite:///{tmp_path}/elsewhere.db"
    arguments = dict(stages=("allocation",), start="S1", name="far", storage=url, out_dir=tmp_path / "out", schedule=tiny,
                     data_dir=data_dir, workers=0, protocol="paper")
    log = run_discovery("minilm", "rte", 2, **arguments)  # queues the stage, trains nothing
    assert log["status"] == "waiting" and log["stages"][0]["status"] == "waiting" and log["final_design"] is None
    assert read_discovery(url, "far")["status"] == "waiting" and not (tmp_path / "out").exists()
    stage = sorted(info["study"] for info in log["stages"][0]["options"].values())
    assert matching_sweeps(url, "far/S1/*") == stage  # the log study "far" is not a sweep: patterns skip it
    with pytest.raises(SweepError, match="no sweep 'far/S9/x'"):
        matching_sweeps(url, "far/S9/x")

    code, out = run_cli("worker", "--storage", url, "--study", "far/S1/*", "--data-dir", str(data_dir),
                     "--threads", "1")
    assert code == 0 and "this worker ran 6 trial(s)" in out, out
    done = run_discovery("minilm", "rte", 2, **arguments)
    assert done["status"] == "done" and done["stages"][0]["winner"] in ("uniform", "increasing", "decreasing")
    assert Design.load(tmp_path / "out" / "far.yaml").allocation == done["stages"][0]["winner"]


def test_the_strategy_stage_decides_group_by_group_and_fixes_each_winner(tmp_path, data_dir, tiny):
    from peftspace.discover import run_discovery

    url = f"sqlite:///{tmp_path}/greedy.db"
    log = run_discovery("minilm", "rte", 2, start="S3", stages=("strategies",), candidates=("L", "B"), name="greedy", protocol="paper",
                        storage=url, out_dir=tmp_path / "out", schedule=tiny, data_dir=data_dir, workers=1, threads=1)
    assert [e["stage"] for e in log["stages"]] == ["S1.G1", "S1.G2", "S1.G3", "S1.G4"]
    winners = []
    for group, entry in enumerate(log["stages"]):
        assert entry["component"] == f"strategies[{group}]" and sorted(entry["options"]) == ["B", "L"]
        for option, info in entry["options"].items():
            for row in finished_trials(url, info["study"]):
                # earlier groups carry their winners, this group the option, later groups anything allowed
                assert row["design"]["strategies"][:group + 1] == [*winners, option]
        winners.append(entry["winner"])
        assert entry["space"]["group_subsets"][:group + 1] == [[w] for w in winners]
    last = log["stages"][-1]  # every other group fixed: one design per option, too few to rank
    assert all(info["designs"] == 1 for info in last["options"].values())
    assert last["ranking"] is None and last["verdict"].startswith("unranked")
    assert log["stages"][0]["ranking"] is not None  # two designs per option there
    design = Design.load(tmp_path / "out" / "greedy.yaml")
    assert list(design.strategies) == winners and log["final_rule"] == "the final space holds exactly one design"
