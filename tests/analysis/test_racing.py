"""Racing: Holm, paired tests and TOST against scipy and hand computations; replay's determinism; error rates by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from peftspace.analysis.racing import (DECIDED, MAX_BLOCKS, RUNNING, TIE, RacePlan, fill_failures, holm, paired_test, race,
                                       replay, trials_used)
from peftspace.analysis.simulate import (StageModel, estimate_block_variances, estimate_variances, simulate_paper,
                                         simulate_race, summarize)


def test_holm_by_hand():
    # sorted: 0.005 <= 0.05/4, 0.01 <= 0.05/3, then 0.03 > 0.05/2 stops the step-down (0.04 is not reached)
    assert holm([0.01, 0.04, 0.03, 0.005], 0.05).tolist() == [True, False, False, True]
    assert holm([0.2, 0.01], 0.05).tolist() == [False, True]
    assert holm([0.026, 0.03], 0.05).tolist() == [False, False]  # 0.026 > 0.05 / 2 stops at the first step
    assert holm([0.0249, 0.04], 0.05).tolist() == [True, True]


def test_holm_matches_its_definition_on_random_p_values():
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = rng.uniform(0, 0.1, size=rng.integers(1, 8))
        m, expected = p.size, np.zeros(p.size, dtype=bool)
        # Holm's adjusted p-values: max over the sorted prefix of (m - j) p_(j), capped at 1
        order = np.argsort(p)
        adjusted = np.maximum.accumulate(np.minimum(1, (m - np.arange(m)) * p[order]))
        expected[order] = adjusted <= 0.05
        assert holm(p, 0.05).tolist() == expected.tolist()


def test_paired_test_matches_scipy():
    rng = np.random.default_rng(2)
    a, b = rng.normal(10, 2, 12), rng.normal(10.8, 2, 12)
    mean, interval, p, _ = paired_test(a - b, 0.01, 1.0)
    reference = stats.ttest_rel(a, b)
    assert p == pytest.approx(reference.pvalue, rel=1e-10)
    assert mean == pytest.approx(np.mean(a - b))
    low, high = reference.confidence_interval(0.99)
    assert interval == pytest.approx((low, high), rel=1e-10)


def test_tost_equivalence_is_both_one_sided_tests():
    rng = np.random.default_rng(3)
    for _ in range(100):
        d = rng.normal(rng.uniform(-1.5, 1.5), rng.uniform(0.1, 2), size=int(rng.integers(3, 30)))
        delta, alpha = 1.0, 0.05
        below = stats.ttest_1samp(d, -delta, alternative="greater").pvalue < alpha
        above = stats.ttest_1samp(d, delta, alternative="less").pvalue < alpha
        assert paired_test(d, alpha, delta)[3] == (below and above)


def test_differences_without_spread():
    assert paired_test([0.0, 0.0, 0.0], 0.05, 1.0)[2:] == (1.0, True)  # identical designs (aliases): a tie
    assert paired_test([2.0, 2.0, 2.0], 0.05, 1.0)[2:] == (0.0, False)  # a constant difference is a difference


def test_fill_failures_takes_the_worst_of_the_block_or_stage():
    nan = math.nan
    errors = [[10.0, 12.0, nan], [20.0, nan, 15.0], [nan, nan, nan]]
    failed = [[False, False, True], [False, True, False], [True, True, True]]
    filled = fill_failures(errors, failed)
    assert filled.tolist() == [[10.0, 12.0, 12.0], [20.0, 20.0, 15.0], [20.0, 20.0, 20.0]]


def test_a_failed_trial_moves_its_options_mean():
    rng = np.random.default_rng(4)
    errors = rng.normal(30, 1, size=(10, 2))
    errors[:, 1] = errors[:, 0] + rng.normal(0, 0.3, 10)  # equal options
    failed = np.zeros_like(errors, dtype=bool)
    failed[[1, 4, 7], 1] = True
    plan = RacePlan(first_look=10, max_blocks=10)
    clean, with_failures = replay(errors, "ab", plan), replay(errors, "ab", plan, failed)
    assert with_failures.means["b"] > clean.means["b"]
    # each failed trial of b counts at the worst error of its block: a's, the only one that ran there
    assert with_failures.means["b"] == pytest.approx(np.mean(np.where(failed[:, 1], errors[:, 0], errors[:, 1])))


def test_plan_looks_and_levels():
    plan = RacePlan(alpha=0.05, max_blocks=20, first_look=5, look_every=5)
    assert plan.looks == (5, 10, 15, 20) and plan.alpha_per_look == pytest.approx(0.0125)
    assert RacePlan(max_blocks=12, first_look=4, look_every=5).looks == (4, 9, 12)
    for bad in ({"alpha": 0}, {"delta": -1}, {"max_blocks": 0}, {"first_look": 30}, {"look_every": 1.5}):
        with pytest.raises(ValueError, match="race plan"):
            RacePlan(**bad)


def test_replay_waits_for_every_block_of_the_next_look():
    plan = RacePlan(first_look=3, look_every=3, max_blocks=6)
    errors = np.array([[1.0, 5.0], [1.1, 5.2], [0.9, math.nan]])
    state = replay(errors, "ab", plan)
    assert state.status == RUNNING and state.blocks_needed == 3 and not state.looks


def test_a_clear_winner_is_decided_and_later_rows_of_the_loser_are_ignored():
    rng = np.random.default_rng(5)
    plan = RacePlan(first_look=5, look_every=5, max_blocks=20)
    errors = np.column_stack([30 + rng.normal(0, 0.5, 20), 40 + rng.normal(0, 0.5, 20), 30.2 + rng.normal(0, 0.5, 20)])
    first = replay(errors[:5], "abc", plan)
    assert first.looks[0].eliminated == {"b": "a"} and first.survivors == ("a", "c")
    # b was out after block 5, but a worker ran ahead and finished b's later trials, absurdly: no look reads them
    ahead, reference = errors.copy(), errors.copy()
    ahead[5:, 1], reference[5:, 1] = 1000.0, math.nan
    assert replay(ahead, "abc", plan).to_dict() == replay(reference, "abc", plan).to_dict()
    # and a look never changes once made: more blocks only add looks
    assert replay(errors, "abc", plan).looks[0] == first.looks[0]


def test_aliases_tie_at_the_first_look():
    errors = np.repeat(np.linspace(20, 40, 5)[:, None], 3, axis=1)  # three options that build the same designs
    state = replay(errors, ("spindle", "uniform", "bottleneck"), RacePlan())
    assert state.status == TIE and state.survivors == ("spindle", "uniform", "bottleneck")
    assert state.winner == "spindle"  # the tie-break: the option listed first


def test_race_stops_at_max_blocks_with_a_confidence_set_and_counts_the_trials_it_drew():
    rng = np.random.default_rng(6)
    drawn = []

    def block(index, alive):
        drawn.append((index, alive))
        context = rng.normal(0, 5)
        return {o: 30 + context + rng.normal(0, 3) for o in alive}  # equal options, too noisy for a tie at delta 0.2

    state = race("abc", block, RacePlan(delta=0.2, max_blocks=10, first_look=5, look_every=5))
    assert state.status == MAX_BLOCKS and len(state.looks) == 2 and state.survivors == ("a", "b", "c")
    assert [index for index, _ in drawn] == list(range(10))  # each block drawn once, in order
    assert trials_used(state) == sum(len(alive) for _, alive in drawn) == 30


def test_estimate_variances_by_hand():
    rows = [{"design": "x", "seed": 0, "error": 10.0}, {"design": "x", "seed": 1, "error": 12.0},
            {"design": "y", "seed": 0, "error": 20.0}, {"design": "y", "seed": 1, "error": 24.0}]
    found = estimate_variances(rows)
    # within: ((10-11)^2 + (12-11)^2 + (20-22)^2 + (24-22)^2) / 2 = 5; design means 11, 22: var 60.5; 60.5 - 5/2
    assert found["noise_var"] == pytest.approx(5.0)
    assert found["context_var"] == pytest.approx(58.0)


def test_estimate_block_variances_matches_the_two_way_anova():
    import pandas as pd
    import statsmodels.formula.api as statsmodels
    from statsmodels.stats.anova import anova_lm

    rng = np.random.default_rng(3)
    errors = 30 + rng.normal(0, 6, (12, 1)) + np.array([0.0, 1.0, 3.0]) + rng.normal(0, 2, (12, 3))
    frame = pd.DataFrame([{"block": b, "option": o, "error": errors[b, o]} for b in range(12) for o in range(3)])
    table = anova_lm(statsmodels.ols("error ~ C(block) + C(option)", frame).fit())
    ms_block, ms_residual = table.loc["C(block)", "mean_sq"], table.loc["Residual", "mean_sq"]
    found = estimate_block_variances([errors])
    assert found["residual_var"] == pytest.approx(ms_residual)
    assert found["context_var"] == pytest.approx((ms_block - ms_residual) / 3)
    assert found["residual_df"] == 22 and found["cells"] == 36
    assert np.mean(np.square(found["residuals"])) == pytest.approx(ms_residual)


def test_estimate_block_variances_with_eliminations_recovers_a_known_truth():
    # blocks x options with options dropped part-way (as a race does), true context sd 5, residual sd 3
    rng = np.random.default_rng(4)
    stages = []
    for _ in range(200):
        errors = 30 + rng.normal(0, 5, (20, 1)) + np.array([0.0, 2.0, 4.0]) + rng.normal(0, 3, (20, 3))
        errors[5:, 2] = np.nan  # eliminated at the first look
        stages.append(errors)
    found = estimate_block_variances(stages)
    assert found["residual_sd"] == pytest.approx(3.0, rel=0.03)
    assert found["context_sd"] == pytest.approx(5.0, rel=0.05)
    with pytest.raises(ValueError, match="two or more blocks"):
        estimate_block_variances([np.array([[1.0, np.nan], [np.nan, 2.0]])])


def test_a_model_with_residuals_draws_them():
    model = StageModel(context_sd=0.0, residuals=(-2.0, 5.0), failure_rate=0.0)
    rng = np.random.default_rng(5)
    draws = {model.trial(10.0, 1.0, rng) for _ in range(200)}
    assert draws == {9.0, 16.0}


# ---------------------------------------------------------------------------------- error rates, by simulation
MODEL = StageModel()  # heavy tails (t3), 5 % failures, context sd 7, noise sd 1.5


def test_equal_options_are_rarely_declared_worse():
    rng = np.random.default_rng(7)
    means = dict.fromkeys("abcde", 30.0)
    outcomes = [simulate_race(means, MODEL, RacePlan(), rng) for _ in range(200)]
    # the family-wise error is controlled at 0.05; 200 runs: a true rate of 0.05 exceeds 0.09 with probability < 1 %
    assert summarize(outcomes, means, 1.0).any_eliminated <= 0.09


def test_the_best_option_survives_and_racing_beats_the_fixed_protocol():
    rng = np.random.default_rng(8)
    means = {"a": 30.0, "b": 31.0, "c": 31.0, "d": 32.0, "e": 33.0}  # the best leads by delta = 1
    racing = summarize([simulate_race(means, MODEL, RacePlan(), rng) for _ in range(200)], means, 1.0)
    paper = summarize([simulate_paper(means, MODEL, 100, rng) for _ in range(100)], means, 1.0)
    assert racing.best_kept >= 0.95
    assert racing.median_trials <= 100  # a fifth of the paper's 5 x 100
    assert racing.best_chosen > paper.best_chosen  # pairing removes the context variance that swamps the unpaired means
