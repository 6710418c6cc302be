"""Strategy effects from one pool: design matrix, robust OLS against statsmodels and by hand, recovery, choice, simulation."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import statsmodels.api as sm  # the oracle for coefficients and robust errors (requirements/dev.txt)

from import_probe import run_probe
from peftspace.analysis.effects import (
    assignment_matrix,
    best_assignments,
    dependent_columns,
    fill_pool_failures,
    fit_effects,
    robust_ols,
)
from peftspace.analysis.pool_search import PoolTruth, draw_truth, simulate_greedy, simulate_pool_search
from peftspace.analysis.racing import RacePlan
from peftspace.analysis.simulate import StageModel
from peftspace.design.pool import balanced_assignments
from peftspace.design.space import ALL_SUBSETS


def hand_row(assignment) -> list[float]:
    """A design-matrix row written out independently: intercept, then per group A, P, B, L in S and |S| >= 2."""
    return [1.0] + [v for s in assignment for v in [float(m in s) for m in "APBL"] + [float(len(s) >= 2)]]


def pool(n: int, seed: int, groups: int = 4, subsets=ALL_SUBSETS):
    return balanced_assignments(groups, n, np.random.default_rng(seed), subsets)


# --------------------------------------------------------------------------------- design matrix
def test_rows_and_columns_by_hand():
    X, columns = assignment_matrix([("AL", "PBL"), ("B", "APBL"), ("LA", "P")], 2, blocks=["x", "y", "x"])
    assert columns == ["intercept", "G1:A", "G1:P", "G1:B", "G1:L", "G1:k>=2", "G2:A", "G2:P", "G2:B", "G2:L", "G2:k>=2",
                       "block=y"]
    assert X.tolist() == [[1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1, 0],
                          [1, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 1],
                          [1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0]]
    X, columns = assignment_matrix([("A", "L"), ("L", "A")], 2, terms="subsets", levels=("A", "L", "AL"))
    assert columns == ["intercept", "G1=L", "G1=AL", "G2=L", "G2=AL"] and X.tolist() == [[1, 0, 0, 1, 0], [1, 1, 0, 0, 0]]


@pytest.mark.parametrize("n, block_size", [(60, None), (100, None), (60, 4), (100, 3), (140, 2)])
def test_a_balanced_pool_has_full_column_rank(n, block_size):
    blocks = None if block_size is None else [i // block_size for i in range(n)]
    X, columns = assignment_matrix(pool(n, n), 4, blocks)
    assert np.linalg.matrix_rank(X) == X.shape[1] == len(columns) == 21 + (0 if blocks is None else -(-n // block_size) - 1)
    assert dependent_columns(X, columns) == []


def test_a_linear_count_of_methods_would_be_collinear():
    X, columns = assignment_matrix(pool(100, 1), 4)
    count = X[:, 1:5].sum(axis=1)  # |S_1| = A + P + B + L of group 1
    assert np.linalg.matrix_rank(np.column_stack([X, count])) == X.shape[1]
    assert dependent_columns(np.column_stack([X, count]), columns + ["G1:k"]) == ["G1:k"]


@pytest.mark.parametrize("subsets", [
    tuple(s for s in ALL_SUBSETS if len(s) <= 2),  # sizes {1, 2}: k>=2 = A + P + B + L - 1
    tuple(s for s in ALL_SUBSETS if len(s) >= 2),  # no singletons: k>=2 = 1, the intercept
])
def test_the_size_term_is_not_identified_without_three_sizes_including_singletons(subsets):
    assignments = pool(80, 2, subsets=subsets)
    with pytest.raises(ValueError, match=r"does not identify the column\(s\) \['G1:k>=2', 'G2:k>=2', 'G3:k>=2', 'G4:k>=2'\]"):
        fit_effects(np.zeros(80), assignments, 4)
    # three sizes with the singletons suffice
    fit_effects(np.random.default_rng(0).normal(size=80), pool(80, 2, subsets=tuple(s for s in ALL_SUBSETS if len(s) != 4)), 4)


# ------------------------------------------------------------------------ robust OLS vs oracles
def test_the_2x2_case_by_hand():
    # two groups, subsets A or L each (one dummy per group), every cell twice; cell means 10, 12, 13, 15 (additive:
    # L costs 3 in group 1 and 2 in group 2), each cell's two errors 1 below and 1 above its mean
    assignments = [(a, b) for a, b in itertools.product("AL", repeat=2) for _ in range(2)]
    errors = [9, 11, 11, 13, 12, 14, 14, 16]
    fit = fit_effects(errors, assignments, 2, terms="subsets", levels=("A", "L"))
    assert fit.columns == ("intercept", "G1=L", "G2=L")
    assert fit.coef.tolist() == pytest.approx([10, 3, 2], abs=1e-12)
    # residuals +-1, leverage 3/8 everywhere: HC3 = (1 / (5/8)^2) (X'X)^-1 = 2.56 (X'X)^-1, and (X'X)^-1 has
    # 3/8 for the intercept (a cell mean: grand mean minus half of each contrast) and 1/2 for each contrast
    assert fit.se.tolist() == pytest.approx([math.sqrt(2.56 * 3 / 8), math.sqrt(1.28), math.sqrt(1.28)], abs=1e-12)
    assert (fit.df_resid, fit.residual_sd) == (5, pytest.approx(math.sqrt(8 / 5)))
    assert fit.predict(("L", "L")) == pytest.approx((15.0, math.sqrt(0.96)))
    assert best_assignments(fit, ("A", "L"), top=4) == [(("A", "A"), pytest.approx(10)), (("A", "L"), pytest.approx(12)),
                                                        (("L", "A"), pytest.approx(13)), (("L", "L"), pytest.approx(15))]


def test_hc3_and_cluster_sandwiches_by_hand():
    # intercept + one indicator, 4 points: b0 = mean of the first two = 2, b1 = difference of means = 2
    X = np.array([[1, 0], [1, 0], [1, 1], [1, 1]], dtype=float)
    y = np.array([1, 3, 2, 6], dtype=float)
    coef, cov, residuals, df = robust_ols(X, y)
    assert coef.tolist() == pytest.approx([2, 2]) and residuals.tolist() == pytest.approx([-1, 1, -2, 2]) and df == 2
    # leverage 1/2: scaled residuals -2, 2, -4, 4; var(b0) = (4 + 4) / 2^2 = 2, var(b1) = 2 + (16 + 16) / 2^2 = 10
    np.testing.assert_allclose(cov, [[2, -2], [-2, 10]], atol=1e-12)
    # clusters {0, 2} and {1, 3}: scores X_c'u_c = (-3, -2) and (3, 2); (X'X)^-1 = [[.5, -.5], [-.5, 1]];
    # sandwich [[.5, .5], [.5, .5]] times B/(B-1) (n-1)/(n-K) = 2 * 3/2 = 3
    _, cov, _, _ = robust_ols(X, y, clusters=["a", "b", "a", "b"])
    np.testing.assert_allclose(cov, [[1.5, 1.5], [1.5, 1.5]], atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_coefficients_and_hc3_errors_equal_statsmodels(seed):
    rng = np.random.default_rng(seed)
    assignments = pool(90, seed)
    errors = 20 + rng.standard_t(3, 90) * np.exp(rng.normal(0, 0.5, 90))  # heavy tails, unequal variances
    fit = fit_effects(errors, assignments, 4)
    X = np.array([hand_row(a) for a in assignments])
    reference = sm.OLS(errors, X).fit(cov_type="HC3")
    assert fit.cov_type == "HC3" and fit.df_resid == reference.df_resid == 90 - 21
    np.testing.assert_allclose(fit.coef, reference.params, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(fit.se, reference.bse, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(fit.cov, reference.cov_params(), rtol=1e-8, atol=1e-8)
    x = np.array(hand_row(("AL", "AP", "APB", "PBL")))
    prediction, se = fit.predict(("AL", "AP", "APB", "PBL"))
    assert prediction == pytest.approx(float(reference.predict(x[None, :])[0]), abs=1e-8)
    assert se == pytest.approx(float(reference.get_prediction(x[None, :]).se_mean[0]), abs=1e-8)


@pytest.mark.parametrize("seed, terms", [(0, "methods"), (1, "methods"), (2, "subsets")])
def test_cluster_robust_errors_equal_statsmodels(seed, terms):
    rng = np.random.default_rng(seed)
    n = 150
    assignments = pool(n, seed)
    blocks = np.repeat(np.arange(60), rng.integers(2, 5, 60))[:n]  # blocks of 2 to 4 designs
    errors = 20 + rng.normal(0, 7, blocks.max() + 1)[blocks] + rng.standard_t(3, n)
    fit = fit_effects(errors, assignments, 4, blocks=blocks.tolist(), terms=terms)
    X, columns = assignment_matrix(assignments, 4, blocks.tolist(), terms=terms)
    if terms == "methods":
        assert np.array_equal(X[:, :21], np.array([hand_row(a) for a in assignments]))
    reference = sm.OLS(errors, X).fit(cov_type="cluster", cov_kwds={"groups": blocks})
    assert fit.cov_type == "cluster" and list(fit.columns) == columns and fit.blocks == tuple(dict.fromkeys(blocks.tolist()))
    np.testing.assert_allclose(fit.coef, reference.params, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(fit.se, reference.bse, rtol=1e-8, atol=1e-8)
    # the prediction is at the average block: the block dummies at 1/B each
    x = np.concatenate([X[0, :-len(fit.blocks) + 1], np.full(len(fit.blocks) - 1, 1 / len(fit.blocks))])
    prediction, se = fit.predict(assignments[0])
    assert prediction == pytest.approx(float(x @ reference.params), abs=1e-8)
    assert se == pytest.approx(float(np.sqrt(x @ reference.cov_params() @ x)), abs=1e-8)


# --------------------------------------------------------------------------- recovery and choice
def true_errors(beta: np.ndarray) -> dict:
    """Every assignment's error under additive truth ``beta`` (intercept, then 5 per group), by brute force."""
    return {a: float(np.dot(hand_row(a), beta)) for a in itertools.product(ALL_SUBSETS, repeat=4)}


@pytest.mark.parametrize("with_blocks", [False, True])
def test_a_noiseless_additive_truth_is_recovered_and_its_best_found(with_blocks):
    rng = np.random.default_rng(7)
    beta = np.concatenate([[30.0], rng.normal(0, 2, 20)])
    assignments = pool(70, 7)
    errors = np.array([np.dot(hand_row(a), beta) for a in assignments])
    blocks = None
    if with_blocks:
        blocks = [i // 3 for i in range(70)]
        errors = errors + rng.normal(0, 7, 24)[blocks]  # block contexts, absorbed by the block effects
    fit = fit_effects(errors, assignments, 4, blocks=blocks)
    np.testing.assert_allclose(fit.coef[1:21], beta[1:], atol=1e-9)
    assert fit.residual_sd < 1e-9
    truth = true_errors(beta)
    ranked = sorted(truth, key=truth.get)
    found = best_assignments(fit, top=3)
    assert [a for a, _ in found] == ranked[:3]
    if not with_blocks:
        assert [p for _, p in found] == pytest.approx([truth[a] for a in ranked[:3]], abs=1e-9)


def test_best_assignments_is_the_exact_top_of_the_predictions():
    rng = np.random.default_rng(8)
    assignments = pool(80, 8)
    fit = fit_effects(rng.normal(20, 3, 80), assignments, 4)
    everything = {a: float(np.dot(hand_row(a), fit.coef)) for a in itertools.product(ALL_SUBSETS, repeat=4)}
    ranked = sorted(everything, key=everything.get)
    found = best_assignments(fit, top=10)
    assert [a for a, _ in found] == ranked[:10]
    assert [p for _, p in found] == pytest.approx([everything[a] for a in ranked[:10]])
    # restricted candidates: the best among them
    allowed = ("A", "L", "AL")
    restricted = {a: v for a, v in everything.items() if all(s in allowed for s in a)}
    assert best_assignments(fit, allowed, top=1)[0][0] == min(restricted, key=restricted.get)
    assert len(best_assignments(fit, ("B",), top=5)) == 1


def test_fill_pool_failures_by_hand():
    errors, failed = [1.0, math.nan, 5.0, 3.0, 7.0, 2.0], [False, True, False, False, True, True]
    assert fill_pool_failures(errors, failed).tolist() == [1, 5, 5, 3, 5, 5]  # the worst of the pool
    # blocks: the worst of the block; a block where everything failed takes the pool's worst
    assert fill_pool_failures(errors, failed, blocks=[0, 0, 1, 1, 2, 2]).tolist() == [1, 1, 5, 3, 5, 5]
    with pytest.raises(ValueError, match="every trial of the pool failed"):
        fill_pool_failures([math.nan, 1.0], [True, True])


# ------------------------------------------------------------------------------------- problems
@pytest.mark.parametrize("change, message", [
    (dict(errors=[20.0] * 29 + [math.nan]), r"errors holds 1 NaN or infinite value\(s\) at positions \[29\]: fill failed"),
    (dict(errors=[20.0] * 29), "errors has 29 values for 30 assignments"),
    (dict(errors=np.zeros((30, 1))), r"errors must be a 1-D array with one error per design, got shape \(30, 1\)"),
    (dict(assignments=[("A", "P")] * 30), r"assignment 0 = \('A', 'P'\) must hold one subset for each of the 3 groups"),
    (dict(assignments=[("A", "X", "")] * 30), r"assignment 0, group 2='X' must be a non-empty string of distinct letters"),
    (dict(blocks=[0] * 29), "blocks has 29 labels for 30 designs"),
    (dict(blocks=[0] * 30), "blocks has a single block"),
    (dict(num_groups=0), "num_groups=0 must be a positive integer"),
    (dict(terms="both"), "terms='both' must be 'methods'"),
])
def test_bad_inputs_raise_a_value_error_naming_the_problem(change, message):
    arguments = dict(errors=np.full(30, 20.0), assignments=pool(30, 0, groups=3), num_groups=3, blocks=None) | change
    with pytest.raises(ValueError, match=message):
        fit_effects(arguments.pop("errors"), **arguments)


def test_more_columns_than_designs_is_refused():
    with pytest.raises(ValueError, match="15 designs for 21 columns"):
        fit_effects(np.zeros(15), pool(15, 0), 4)


def test_every_problem_is_listed_at_once():
    with pytest.raises(ValueError) as caught:
        fit_effects([math.nan, 1.0], [("A",), ("Q",)], 1, blocks=[0])
    assert all(text in str(caught.value) for text in ("NaN", "group 1='Q'"))


def test_predict_and_best_assignments_check_their_arguments():
    fit = fit_effects(np.random.default_rng(0).normal(size=60), pool(60, 0), 4)
    with pytest.raises(ValueError, match="the assignment = \\('A', 'P'\\) must hold one subset for each of the 4 groups"):
        fit.predict(("A", "P"))
    with pytest.raises(ValueError, match="top=0 must be a positive integer"):
        best_assignments(fit, top=0)
    with pytest.raises(ValueError, match=r"candidates\[1\]='Z'"):
        best_assignments(fit, ("A", "Z"))


def test_the_fit_serializes_to_json():
    assignments = pool(60, 3)
    fit = fit_effects(np.random.default_rng(3).normal(size=60), assignments, 4, blocks=[i // 4 for i in range(60)])
    data = json.loads(json.dumps(fit.to_dict()))
    assert data["columns"][:3] == ["intercept", "G1:A", "G1:P"] and data["cov_type"] == "cluster"
    assert len(data["coef"]) == len(data["se"]) == 21 + 14 and data["blocks"] == list(range(15))
    assert fit.coefficient("G2:L") == (pytest.approx(data["coef"][9]), pytest.approx(data["se"][9]))


# ----------------------------------------------------------------------------------- simulation
def test_the_truth_knows_its_best_by_brute_force():
    truth = draw_truth(np.random.default_rng(0), num_groups=3)
    everything = {a: truth.error(a) for a in itertools.product(ALL_SUBSETS, repeat=3)}
    best = min(everything, key=everything.get)
    assert truth.best() == (best, pytest.approx(everything[best]))
    assert np.std(truth.contributions, axis=1) == pytest.approx([1.5] * 3)


def test_greedy_and_pool_find_an_obvious_best_without_noise():
    # group effects 0 for the subset numbered g, 10 otherwise; no interactions, no noise, no failures
    contributions = np.full((4, 15), 10.0)
    for g in range(4):
        contributions[g, g] = 0.0
    truth = PoolTruth(ALL_SUBSETS, contributions, np.zeros((4, 4, 15, 15)))
    quiet = StageModel(context_sd=0.0, interaction_sd=0.0, noise_sd=0.0, noise_df=math.inf, failure_rate=0.0)
    greedy = simulate_greedy(truth, quiet, 2, np.random.default_rng(0))
    assert greedy["chosen"] == ("A", "P", "B", "L") and greedy["regret"] == 0 and greedy["trials"] == 4 * 15 * 2
    # the methods model cannot fit these singleton-only effects exactly; the per-subset model can
    found = simulate_pool_search(truth, quiet, 80, RacePlan(), np.random.default_rng(0), terms="subsets")
    assert found["chosen"] == ("A", "P", "B", "L") and found["regret"] == 0 and found["pool_trials"] == 80
    assert found["trials"] == 80 + found["race_trials"] and found["finalists"][-1] == ("AL", "AP", "APB", "PBL")


def test_a_recalled_assignment_predicted_best_leads_the_race():
    truth = PoolTruth(ALL_SUBSETS, np.full((4, 15), 10.0), np.zeros((4, 4, 15, 15)))
    for g, subset in enumerate(("AL", "AP", "APB", "PBL")):
        truth.contributions[g, ALL_SUBSETS.index(subset)] = 0.0
    quiet = StageModel(context_sd=0.0, interaction_sd=0.0, noise_sd=0.0, noise_df=math.inf, failure_rate=0.0)
    found = simulate_pool_search(truth, quiet, 80, RacePlan(), np.random.default_rng(1), terms="subsets")
    assert found["finalists"][0] == found["chosen"] == ("AL", "AP", "APB", "PBL") and len(found["finalists"]) == 3
    with pytest.raises(ValueError, match="finalists=1 must be an integer >= 2"):
        simulate_pool_search(truth, quiet, 80, RacePlan(), np.random.default_rng(1), finalists=1)


SIMULATION_RUNS = 100
SIMULATION_FLOOR = 0.70  # benchmarks/pool_sim.py: 0.88 on this configuration (1,000 runs); these 100 runs: 0.85


def test_the_pool_search_mostly_lands_within_delta_of_the_best():
    """A small version of benchmarks/pool_sim.py's "additive" scenario: pool of 140 in blocks of 4, then the race."""
    model, plan = StageModel(), RacePlan()
    regrets, trials = [], []
    for run in range(SIMULATION_RUNS):
        truth = draw_truth(np.random.default_rng([0, run]), size_sd=0.0, subset_sd=0.0, interaction_sd=0.0)
        result = simulate_pool_search(truth, model, 140, plan, np.random.default_rng([1, run]), block_size=4)
        regrets.append(result["regret"])
        trials.append(result["trials"])
    assert np.mean(np.array(regrets) < plan.delta + 1e-12) >= SIMULATION_FLOOR
    assert max(trials) <= 140 + 3 * plan.max_blocks


def test_the_effects_modules_import_no_torch():
    report = run_probe("import numpy as np", "import peftspace.analysis.effects, peftspace.analysis.pool_search",
                       "from peftspace.analysis.effects import fit_effects",
                       "from peftspace.design.pool import balanced_assignments",
                       "fit_effects(np.arange(40.0), balanced_assignments(4, 40, np.random.default_rng(0)), 4)")
    assert report == {"attempts": [], "loaded": []}


def test_per_group_levels_fit_a_dummy_per_group_and_subset_and_rank_assignments_exactly():
    import itertools

    from peftspace.analysis.effects import narrowed_subsets

    levels = [("A", "L", "AL"), ("P", "B", "PB"), ("L", "AP", "APBL"), ("B", "A", "PL")]
    rng = np.random.default_rng(21)
    assignments = [tuple(group[int(i)] for group, i in zip(levels, rng.integers(3, size=4))) for _ in range(60)]
    truth = {(g, s): v for g, group in enumerate(levels) for s, v in zip(group, (0.0, 2.0, -1.5))}
    y = np.array([sum(truth[g, s] for g, s in enumerate(a)) for a in assignments]) + rng.normal(0, 0.3, 60)
    fit = fit_effects(y, assignments, 4, terms="subsets", levels=levels)
    # the design matrix by hand: intercept, then per group a 0/1 column for each level but the first
    X = np.array([[1.0] + [float(a[g] == s) for g in range(4) for s in levels[g][1:]] for a in assignments])
    assert fit.columns[1:] == tuple(f"G{g + 1}={s}" for g in range(4) for s in levels[g][1:])
    assert np.allclose(fit.coef, np.linalg.lstsq(X, y, rcond=None)[0])
    # the top assignments over per-group candidates are those of brute-force enumeration of the predictions
    everything = sorted(itertools.product(*levels), key=lambda a: fit.predict(a)[0])
    assert [a for a, _ in best_assignments(fit, levels, top=5)] == everything[:5]
    # narrowing keeps each group's lowest predicted contributions, best first
    kept = narrowed_subsets(fit, levels, keep=2)
    for g in range(4):
        contribution = {s: 0.0 if s == levels[g][0] else fit.coefficient(f"G{g + 1}={s}")[0] for s in levels[g]}
        assert kept[g] == tuple(sorted(levels[g], key=contribution.get)[:2])
    with pytest.raises(ValueError, match="levels gives 3 groups' subsets for 4 groups"):
        fit_effects(y, assignments, 4, terms="subsets", levels=levels[:3])
    with pytest.raises(ValueError, match="not among the levels"):
        fit_effects(y, [("P",) + a[1:] for a in assignments], 4, terms="subsets", levels=levels)
    with pytest.raises(ValueError, match="keep=0"):
        narrowed_subsets(fit, levels, keep=0)
