"""Ranking a component's options: order, verdict, per-option summaries, JSON, determinism."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from peftspace.analysis import DECIDED, UNDECIDED, Ranking, rank_options


def test_clearly_separated_options_are_decided():
    rng = np.random.default_rng(0)
    errors = {"uniform": rng.normal(15, 1, 50), "spindle": rng.normal(10, 1, 50), "increasing": rng.normal(20, 1, 50)}
    ranking = rank_options(errors, rng=np.random.default_rng(1))
    assert ranking.order == ("spindle", "uniform", "increasing")
    assert (ranking.best, ranking.runner_up, ranking.verdict) == ("spindle", "uniform", DECIDED)
    assert ranking.difference.low > 0 and ranking.difference.low < 5.0 < ranking.difference.high
    assert ranking.difference.estimate == pytest.approx(errors["uniform"].mean() - errors["spindle"].mean())
    best = ranking.options[0]
    assert (best.n, best.ks_vs_best, best.ks_p_vs_best) == (50, 0.0, 1.0)
    assert best.mean == pytest.approx(errors["spindle"].mean()) and best.median == pytest.approx(np.median(errors["spindle"]))
    assert best.mean_ci.low < best.mean < best.mean_ci.high
    assert ranking.options[2].ks_vs_best == 1.0 and ranking.options[2].ks_p_vs_best < 1e-10


def test_identical_options_are_undecided():
    values = np.random.default_rng(2).normal(10, 2, 40)
    ranking = rank_options({"b": values, "a": values.copy()}, rng=np.random.default_rng(3))
    assert ranking.order == ("a", "b")  # equal mean and median: by name
    assert ranking.verdict == UNDECIDED and ranking.difference.low < 0 < ranking.difference.high


def test_same_distribution_is_rarely_decided():
    rng = np.random.default_rng(4)
    verdicts = [rank_options({"x": rng.normal(0, 1, 30), "y": rng.normal(0, 1, 30)}, n_resamples=400, rng=rng).verdict
                for _ in range(40)]
    assert verdicts.count(DECIDED) <= 5  # about 5% expected at 95% confidence


def test_ties_in_the_mean_are_broken_by_the_median():
    ranking = rank_options({"a": [0.0, 0.0, 3.0], "b": [0.0, 1.0, 2.0]}, n_resamples=100, rng=np.random.default_rng(0))
    assert ranking.order == ("a", "b")  # mean 1 both; median 0 < 1


def test_to_dict_is_json_ready_and_the_ranking_is_frozen_and_deterministic():
    errors = {"p": [1.0, 2.0, 3.0], "q": [2.0, 3.0, 5.0]}
    ranking = rank_options(errors, confidence=0.9, n_resamples=300, rng=np.random.default_rng(5))
    data = json.loads(json.dumps(ranking.to_dict()))
    assert data["best"] == "p" and data["runner_up"] == "q"
    assert data["verdict"] == (DECIDED if data["difference"]["low"] > 0 else UNDECIDED)  # the rule the verdict states
    assert data["confidence"] == 0.9 and data["n_resamples"] == 300 and data["statistic"] == "mean error"
    assert [o["name"] for o in data["options"]] == ["p", "q"] and data["options"][1]["n"] == 3
    assert set(data["difference"]) == {"estimate", "low", "high", "confidence"}
    assert rank_options(errors, confidence=0.9, n_resamples=300, rng=np.random.default_rng(5)) == ranking
    assert isinstance(ranking, Ranking)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ranking.verdict = DECIDED


def test_bad_input_is_reported_all_at_once():
    with pytest.raises(ValueError, match="at least two options"):
        rank_options({"only": [1.0, 2.0]}, rng=np.random.default_rng(0))
    with pytest.raises(ValueError) as info:
        rank_options({"a": [1.0, np.nan], "b": [1.0], "c": [1.0, 2.0]}, rng=np.random.default_rng(0))
    assert "option 'a' holds 1 non-finite" in str(info.value) and "option 'b' has 1 error(s)" in str(info.value)
    with pytest.raises(TypeError, match="Generator"):
        rank_options({"a": [1.0, 2.0], "b": [1.0, 2.0]}, rng=0)
