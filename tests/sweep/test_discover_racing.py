"""A racing discovery on real data (MiniLM, RTE + MRPC, a tiny schedule): paired blocks, aliases, validation-only decisions."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import optuna
import pytest

from peftspace.analysis.racing import RacePlan, replay
from peftspace.design import Design
from peftspace.discover import read_discovery
from peftspace.sweep import SweepError
from peftspace.sweep.status import design_outcomes
from peftspace.sweep.store import open_storage

PLAN = {"max_blocks": 4, "first_look": 2, "look_every": 2}


def _trial_count(url) -> int:
    store = open_storage(url)
    return sum(len(optuna.load_study(study_name=n, storage=store).get_trials()) for n in optuna.get_all_study_names(store))


def _matrix(outcomes, options, key):
    """blocks x options of the mean ``key`` over each cell's replicates, computed from the store's rows alone."""
    found = np.full((PLAN["max_blocks"], len(options)), np.nan)
    for row in outcomes:
        if row["state"] == "complete":
            for option in row["options"]:
                found[row["block"], options.index(option)] = row[key]
    return found


def test_a_racing_discovery_merges_aliases_decides_on_validation_and_resumes(tmp_path, data_dir, tiny_flags, run_cli):
    url, out = f"sqlite:///{tmp_path}/race.db", tmp_path / "out"
    command = ["discover", "--model", "minilm", "--tasks", "rte,mrpc", "--stages", "grouping,allocation", "--name", "race",
               "--storage", url, "--out", str(out), "--workers", "1", "--data-dir", str(data_dir), "--max-blocks", "4",
               "--first-look", "2", "--look-every", "2", "--fidelity-check", "3", *tiny_flags]
    code, printed = run_cli(*command)
    assert code == 0, printed
    log = read_discovery(url, "race")
    assert log["status"] == "done" and log["protocol"] == "racing"
    # racing defaults: rsLoRA in the start space (ranks change per layer in the allocation stage) and midpoint scoring
    assert log["start"]["options"]["lora_scaling"] == "rslora" and log["schedule"]["mid_validation"] is True
    check = log["fidelity_result"]  # 3 designs re-trained 3x longer, their short and long validation errors correlated
    assert check["designs"] == 3 and check["finished"] == 3 and check["study"] == "race/fidelity"
    rows = design_outcomes(url, "race/fidelity")
    assert all(r["state"] == "complete" for r in rows)
    assert {r["short_validation_error"] for r in rows} <= {r["validation_error"] for e in log["stages"]
                                                          for r in design_outcomes(url, e["study"])}
    if check["spearman"] is not None:
        from scipy import stats

        expected = stats.spearmanr([r["short_validation_error"] for r in rows], [r["validation_error"] for r in rows])
        assert check["spearman"] == pytest.approx(expected.statistic)
    grouping, allocation = log["stages"]
    # on 6 layers uniform and decreasing both give groups [2, 2, 1, 1]: one option, raced once
    assert grouping["aliases"] == {"decreasing": "uniform"}
    assert grouping["raced"] == ["uniform", "increasing", "spindle", "bottleneck"]
    assert "uniform (= decreasing)" in " ".join(printed.split())

    for entry in (grouping, allocation):
        outcomes = design_outcomes(url, entry["study"])
        options = entry["raced"]
        key = "grouping" if entry["component"] == "grouping" else "allocation"
        for row in outcomes:  # a design carries the compared component of the (first) option it was built for
            assert row["design"][key] == row["options"][0] and set(row["options"]) <= set(options)
        for block in {r["block"] for r in outcomes}:  # the block's designs differ in that component only
            others = {json.dumps({k: v for k, v in r["design"].items() if k != key}, sort_keys=True)
                      for r in outcomes if r["block"] == block}
            assert len(others) == 1
        # the race is the replay of the validation errors in the store (never the test errors)
        validation = _matrix(outcomes, options, "validation_error")
        failed = np.zeros_like(validation, dtype=bool)
        for row in outcomes:
            if row["state"] == "failed":
                for option in row["options"]:
                    failed[row["block"], options.index(option)] = True
        expected = replay(validation, options, RacePlan(**PLAN), failed)
        assert entry["race"] == json.loads(json.dumps(expected.to_dict()))
        assert entry["winner"] == expected.winner and entry["verdict"] == expected.status
        assert entry["trials"]["used"] == sum(r["state"] in ("complete", "failed") for r in outcomes)
    assert allocation["space"]["groupings"] == [grouping["winner"]]
    design = Design.load(out / "race.yaml")
    assert design.grouping == grouping["winner"] and design.allocation == allocation["winner"]

    # selection never reads the test split: scramble every stored test error, resume, get the same decisions
    trials = _trial_count(url)
    with sqlite3.connect(tmp_path / "race.db") as db:
        db.execute("UPDATE trial_values SET value = 100 - value * 0.37")
    code, again = run_cli(*command)
    assert code == 0, again
    resumed = read_discovery(url, "race")
    assert _trial_count(url) == trials  # nothing re-ran
    for before, after in zip(log["stages"], resumed["stages"]):
        assert before["race"] == after["race"] and before["winner"] == after["winner"]
    assert resumed["final_design"] == log["final_design"]
    assert resumed["final_errors"]["validation"] == log["final_errors"]["validation"]
    assert resumed["final_errors"]["test"] != log["final_errors"]["test"]  # reported from the (scrambled) store


def test_racing_refuses_test_only_and_bad_plans(tmp_path, data_dir, tiny):
    from dataclasses import replace

    from peftspace.discover import run_discovery

    store = f"sqlite:///{tmp_path}/x.db"
    with pytest.raises(SweepError, match="validation split"):
        run_discovery("minilm", "rte", 2, storage=store, schedule=replace(tiny, score_validation=False))
    with pytest.raises(SweepError, match="alpha"):
        run_discovery("minilm", "rte", 2, storage=store, plan={"alpha": 2})
    with pytest.raises(SweepError, match="protocol"):
        run_discovery("minilm", "rte", 2, storage=store, protocol="fast")
    with pytest.raises(SweepError, match="replicates"):
        run_discovery("minilm", "rte", 2, storage=store, replicates=0)


@pytest.mark.parametrize("flag, value, named", [
    ("--protocol", "fast", "protocol"), ("--alpha", "2", "alpha"), ("--delta", "-1", "delta"), ("--max-blocks", "0", "max_blocks"),
    ("--first-look", "1", "first_look"), ("--look-every", "0", "look_every"), ("--replicates", "0", "replicates"),
    ("--pool-size", "3", "pool_size"), ("--narrow", "-1", "narrow"), ("--final-blocks", "1", "final_blocks"),
    ("--max-trials", "0", "max_trials"), ("--fidelity-check", "-1", "fidelity_check"),
    ("--lora-scaling", "cubic", "lora_scaling"), ("--lr-multipliers", "P=-1", "P"),
])
def test_every_racing_flag_has_a_clear_error(flag, value, named, tmp_path, run_cli):
    code, printed = run_cli("discover", "--tasks", "rte", "--storage", f"sqlite:///{tmp_path}/x.db", flag, value)
    assert code == 2 and "Traceback" not in printed and named in printed, printed


def test_max_trials_gives_each_stage_an_equal_share_of_what_is_left():
    from peftspace.discover import _budgeted

    plan = RacePlan()
    log = {"stages": [{"component": "grouping", "trials": {"used": 0}}]}
    assert _budgeted(plan, None, log, 4, 1) is plan
    assert _budgeted(plan, 200, log, 4, 1).max_blocks == 10  # 200 / 4 stages = 50 trials, over 5 groupings
    log = {"stages": [{"component": "grouping", "trials": {"used": 50}}, {"component": "allocation"}]}
    assert _budgeted(plan, 200, log, 3, 1).max_blocks == 16  # (200 - 50) / 3 = 50 over 3 allocations
    assert _budgeted(plan, 200, log, 3, 2).max_blocks == 8  # two replicates per design
    tight = _budgeted(plan, 12, log, 3, 1)
    assert tight.max_blocks == 2 and tight.first_look == 2  # never fewer than two blocks


def test_the_strategy_stage_fits_one_balanced_pool_and_races_its_best_assignments(tmp_path, data_dir, tiny):
    from collections import Counter

    from peftspace.analysis.effects import assignment_matrix, best_assignments, fit_effects
    from peftspace.design.space import ALL_SUBSETS, RECALLED_S4
    from peftspace.discover import run_discovery

    url = f"sqlite:///{tmp_path}/pool.db"
    log = run_discovery("minilm", "rte", 2, start="S3", stages=("strategies",), name="pool", storage=url,
                        out_dir=tmp_path / "out", schedule=tiny, data_dir=data_dir, workers=1, threads=1, pool_size=24,
                        plan={"max_blocks": 2, "first_look": 2, "look_every": 2})
    assert log["status"] == "done"
    [entry] = log["stages"]
    pool = design_outcomes(url, entry["pool"]["study"])
    assert len(pool) == 24 and all(r["state"] == "complete" for r in pool)
    for group in range(4):  # balanced: every subset 1 or 2 times in each group
        counts = Counter(r["assignment"].split(",")[group] for r in pool)
        assert set(counts) <= set(ALL_SUBSETS) and min(counts.values()) >= 1 and max(counts.values()) <= 2
        assert all(r["design"]["strategies"][group] == r["assignment"].split(",")[group] for r in pool)
    blocks = Counter(r["block"] for r in pool)
    assert blocks == {0: 8, 1: 8, 2: 8} and all(len({r["seed"] for r in pool if r["block"] == b}) == 1 for b in blocks)
    # the fit is OLS on the pool's validation errors with block effects (checked by lstsq on the same design matrix)
    assignments = [tuple(r["assignment"].split(",")) for r in pool]
    y = np.array([r["validation_error"] for r in pool])
    X, _ = assignment_matrix(assignments, 4, [r["block"] for r in pool])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    assert np.allclose(entry["pool"]["fit"]["coef"], coef, atol=1e-8)
    fit = fit_effects(y, assignments, 4, [r["block"] for r in pool])
    predicted = [",".join(a) for a, _ in best_assignments(fit, ALL_SUBSETS, top=2)]
    assert [p["assignment"] for p in entry["pool"]["predicted"]] == predicted
    assert list(entry["options"]) == predicted + [",".join(RECALLED_S4)] * (",".join(RECALLED_S4) not in predicted)
    assert entry["winner"] in entry["options"] and entry["study"] == "pool/S1.final"
    final = design_outcomes(url, entry["study"])
    assert entry["trials"]["used"] == 24 + sum(r["state"] in ("complete", "failed") for r in final)  # pool + final race
    assert log["final_space"]["assignment"] == entry["winner"].split(",")
    assert Design.load(tmp_path / "out" / "pool.yaml").strategies == tuple(entry["winner"].split(","))


def test_max_trials_splits_the_strategy_stage_between_pool_and_race():
    from peftspace.discover import _pool_budget

    log = {"stages": [{"component": "grouping", "trials": {"used": 60}}, {"component": "allocation", "trials": {"used": 40}},
                      {"component": "tuned", "trials": {"used": 20}}, {"component": "strategies"}]}
    assert _pool_budget(RacePlan(), None, log, 1, 1, 140) == (140, RacePlan())
    pool, plan = _pool_budget(RacePlan(), 320, log, 1, 1, 140)
    assert pool == 140 and plan.max_blocks == 20  # 200 left: the pool and a full race of 3 x 20
    pool, plan = _pool_budget(RacePlan(), 250, log, 1, 1, 140)
    assert pool == 91 and plan.max_blocks == 13 and pool + 3 * plan.max_blocks <= 130  # 130 left
    # two pools: the final race takes at most final_blocks blocks, the pools the rest
    assert _pool_budget(RacePlan(), None, log, 1, 1, 184, 5) == (184, RacePlan(max_blocks=5, first_look=5))
    pool, plan = _pool_budget(RacePlan(), 320, log, 1, 1, 184, 5)
    assert pool == 184 and plan.max_blocks == 5  # 200 left: 184 + 3 x 5 = 199
    pool, plan = _pool_budget(RacePlan(), 250, log, 1, 1, 184, 5)
    assert (pool, plan.max_blocks) == (118, 4) and pool + 3 * plan.max_blocks <= 130  # 130 left: a race of 4 blocks
    pool, plan = _pool_budget(RacePlan(), 320, log, 1, 2, 184, 5)
    assert pool + 2 * 3 * plan.max_blocks <= 200 and plan.max_blocks >= 2  # replicates double the race's trials


def test_the_final_design_carries_the_winners_value_when_its_trial_was_shared():
    from peftspace.discover import _with_winner

    # group 1 untuned: "A,APB,AB,A" and "P,APB,AB,A" build the same, so one trial served both options
    shared = Design(grouping="bottleneck", num_groups=4, tuned_groups=(1, 3), strategies=("A", "APB", "AB", "A"))
    assert _with_winner(shared, "strategies", "P,APB,AB,A", 4).strategies == ("P", "APB", "AB", "A")
    assert _with_winner(shared, "allocation", "decreasing", 4).allocation == "decreasing"
    assert _with_winner(shared, "tuned", "any", 4) == shared


def test_the_strategy_stage_narrows_to_a_second_pool_and_fits_its_subsets(tmp_path, data_dir, tiny, monkeypatch):
    """Two pools on a known truth (trials stubbed): the second pool holds each group's 3 best subsets as an
    independent least-squares fit of the first pool ranks them, its fit has a dummy per (group, subset),
    and the race picks the truly best assignment of the narrowed space."""
    import hashlib
    import itertools

    import peftspace.trial
    from peftspace.analysis.effects import assignment_matrix
    from peftspace.design.space import ALL_SUBSETS
    from peftspace.discover import run_discovery
    from peftspace.sweep.worker import run_worker

    rng = np.random.default_rng(11)
    truth = {(g, s): float(v) for g in range(4) for s, v in zip(ALL_SUBSETS, rng.normal(0.0, 3.0, 15))}

    def error_of(strategies, seed) -> float:  # the truth, plus a tiny reproducible wobble per trial
        wobble = int(hashlib.sha256(f"{strategies}{seed}".encode()).hexdigest()[:8], 16) / 16 ** 8 * 0.02
        return 40.0 + sum(truth[g, s] for g, s in enumerate(strategies)) + wobble

    def run_trial(design, model, task, schedule, seed, *args, **kwargs):
        score = 100.0 - error_of(design.strategies, seed)
        return {"status": "ok", "reason": None, "score": score, "validation_score": score, "mid_validation_score": score,
                "trainable": {"design": 7}}

    monkeypatch.setattr(peftspace.trial, "run_trial", run_trial)
    url = f"sqlite:///{tmp_path}/two.db"
    kwargs = dict(start="S3", stages=("strategies",), name="two", storage=url, out_dir=tmp_path / "out", schedule=tiny,
                  data_dir=data_dir, workers=0, pool_size=80, narrow=3, final_blocks=3,
                  plan={"max_blocks": 4, "first_look": 2, "look_every": 2})
    log = run_discovery("minilm", "rte", 2, **kwargs)
    for _ in range(6):  # the worker runs in this process, so it sees the stub; the discovery returns while waiting
        if log["status"] != "waiting":
            break
        for study in log["stages"][-1]["studies"]:
            run_worker(url, study, data_dir)
        log = run_discovery("minilm", "rte", 2, **kwargs)
    assert log["status"] == "done"
    [entry] = log["stages"]
    first, second = design_outcomes(url, entry["pool"]["study"]), design_outcomes(url, entry["pool"]["second"]["study"])
    assert (len(first), len(second)) == (40, 40)
    # the narrowing, recomputed: lstsq of the first pool's validation errors on its design matrix, each group's
    # 3 subsets of lowest predicted contribution
    assignments = [tuple(r["assignment"].split(",")) for r in first]
    X, columns = assignment_matrix(assignments, 4, [r["block"] for r in first])
    coef = dict(zip(columns, np.linalg.lstsq(X, np.array([r["validation_error"] for r in first]), rcond=None)[0]))
    expected = []
    for g in range(4):
        score = {s: sum(coef[f"G{g + 1}:{m}"] for m in s) + (coef[f"G{g + 1}:k>=2"] if len(s) > 1 else 0.0)
                 for s in ALL_SUBSETS}
        expected.append(sorted(ALL_SUBSETS, key=lambda s: (score[s], ALL_SUBSETS.index(s)))[:3])
    assert entry["pool"]["second"]["subsets"] == expected
    for group in range(4):  # balanced over the narrowed subsets
        counts = {s: sum(r["assignment"].split(",")[group] == s for r in second) for s in expected[group]}
        assert sum(counts.values()) == 40 and max(counts.values()) - min(counts.values()) <= 1
    # the second fit has a dummy per non-reference narrowed subset and group; noise-free, it recovers the truth's
    # differences exactly, so the winner is the narrowed space's true best
    fit = entry["pool"]["second"]["fit"]
    assert [c for c in fit["columns"] if c.startswith("G")] == [f"G{g + 1}={s}" for g in range(4) for s in expected[g][1:]]
    for g in range(4):
        for s in expected[g][1:]:
            found = fit["coef"][fit["columns"].index(f"G{g + 1}={s}")]
            assert found == pytest.approx(truth[g, s] - truth[g, expected[g][0]], abs=0.05)
    best = min(itertools.product(*expected), key=lambda a: sum(truth[g, s] for g, s in enumerate(a)))
    assert entry["winner"] == ",".join(best)
    assert entry["trials"]["pool"] == 80 and entry["trials"]["used"] == 80 + entry["trials"]["complete"]
    assert entry["plan"]["max_blocks"] == 3  # final_blocks caps the final race (the plan allows 4)
