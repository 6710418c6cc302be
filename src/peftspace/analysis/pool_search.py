"""Choosing a strategy assignment from one pool, simulated on a known truth, next to the paper's greedy search.

**The truth.** A design's true error is additive over groups plus pairwise interactions::

    true error = sum over groups g of c[g, S_g]  +  sum over pairs g < h of I[g, h, S_g, S_h]

:func:`draw_truth` draws each group's contributions ``c[g, S]`` over the candidate subsets as a sum
of per-method effects (``method_sd``), a random function of the subset's size (``size_sd``) and a
subset-specific term (``subset_sd``), centred and rescaled so that their standard deviation over
the subsets is ``spread``; the interactions are independent normals (``interaction_sd`` each). The
effects model of :mod:`peftspace.analysis.effects` (method indicators and a ``|S| >= 2`` term) thus
sees the method effects, part of the size effect, and none of the subset terms or interactions.

**Pool search** (:func:`simulate_pool_search`): a balanced pool, every design trained once
(``StageModel.trial``: its own context, or one context per block of ``block_size`` designs sharing
a seed), failures at the worst error of the pool or block, the effects fit, then a paired race
(:func:`peftspace.analysis.racing.race`) among the best predicted assignments and the recalled S4
assignment. With ``second_pool``, a second balanced pool narrowed to each group's ``narrow`` best
predicted subsets is trained and fitted with a dummy per (group, subset) before the race: within the
narrowed space the subset terms the first fit cannot see are estimated. **Greedy search** (:func:`simulate_greedy`): the paper's protocol, group after group,
``n`` designs per candidate subset (the groups not yet decided drawn at random, the decided ones
fixed), the lowest mean error (failures dropped) wins the group.

numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from peftspace.analysis.effects import (METHODS, SUBSETS, assignment_row, best_assignments, fill_pool_failures, fit_effects,
                                        narrowed_subsets)
from peftspace.analysis.racing import RacePlan, race, trials_used
from peftspace.analysis.simulate import StageModel
from peftspace.design.pool import balanced_assignments
from peftspace.design.space import ALL_SUBSETS, RECALLED_S4

_MAX_ENUMERATED = 2_000_000  # assignments searched exhaustively for the true best


@dataclass(frozen=True, eq=False)
class PoolTruth:
    """True error contributions: ``contributions[g, i]`` of subset ``subsets[i]`` in group g, and
    ``interactions[g, h, i, j]`` of subsets i in g and j in h (only ``g < h`` is read)."""

    subsets: tuple[str, ...]
    contributions: np.ndarray  # groups x subsets
    interactions: np.ndarray  # groups x groups x subsets x subsets

    @property
    def num_groups(self) -> int:
        return self.contributions.shape[0]

    def index(self, assignment: Sequence[str]) -> tuple[int, ...]:
        return tuple(self.subsets.index(s) for s in assignment)

    def error(self, assignment: Sequence[str]) -> float:
        """The true error of one assignment."""
        i = self.index(assignment)
        groups = range(self.num_groups)
        return float(sum(self.contributions[g, i[g]] for g in groups)
                     + sum(self.interactions[g, h, i[g], i[h]] for g in groups for h in groups if g < h))

    def table(self) -> np.ndarray:
        """The true error of every assignment, as an array indexed by one subset number per group."""
        size, groups = len(self.subsets), self.num_groups
        if size ** groups > _MAX_ENUMERATED:
            raise ValueError(f"{size}^{groups} assignments are too many to enumerate (at most {_MAX_ENUMERATED})")
        total = np.zeros((size,) * groups)
        for g in range(groups):
            total = total + self.contributions[g].reshape([size if a == g else 1 for a in range(groups)])
            for h in range(g + 1, groups):
                total = total + self.interactions[g, h].reshape([size if a in (g, h) else 1 for a in range(groups)])
        return total

    def best(self) -> tuple[tuple[str, ...], float]:
        """The truly best assignment and its error (exhaustive search)."""
        table = self.table()
        i = np.unravel_index(int(np.argmin(table)), table.shape)
        return tuple(self.subsets[j] for j in i), float(table[i])

    def oracle(self, terms: str = METHODS) -> tuple[str, ...]:
        """The assignment the effects model (``terms``) would pick with unlimited data from a uniform pool.

        Under the uniform distribution over assignments the groups are orthogonal, so the model's
        least-squares projection of the truth is, group by group, the projection of the group's
        marginal mean errors onto its columns (intercept, method indicators and ``|S| >= 2``, or
        one dummy per subset: then the marginal means themselves).
        """
        table = self.table()
        features = np.column_stack([np.ones(len(self.subsets)), [assignment_row([s], terms, self.subsets) for s in self.subsets]])
        choice = []
        for g in range(self.num_groups):
            marginal = table.mean(axis=tuple(a for a in range(self.num_groups) if a != g))
            fitted = features @ np.linalg.lstsq(features, marginal, rcond=None)[0]
            choice.append(self.subsets[int(np.argmin(fitted))])
        return tuple(choice)


def draw_truth(rng: np.random.Generator, num_groups: int = 4, subsets: Sequence[str] = ALL_SUBSETS, spread: float = 1.5,
               method_sd: float = 1.0, size_sd: float = 0.5, subset_sd: float = 0.5, interaction_sd: float = 0.5) -> PoolTruth:
    """A random truth (module doc): per group, method effects + a function of size + subset terms,
    rescaled to standard deviation ``spread`` over the subsets; pairwise interactions of sd ``interaction_sd``."""
    subsets = tuple(subsets)
    size = len(subsets)
    rows = np.array([assignment_row([s])[:4] for s in subsets])  # method indicators
    counts = np.array([len(s) for s in subsets])
    contributions = np.zeros((num_groups, size))
    for g in range(num_groups):
        values = rows @ rng.normal(0.0, method_sd, 4) + rng.normal(0.0, size_sd, 5)[counts] + rng.normal(0.0, subset_sd, size)
        values = values - values.mean()
        sd = values.std()
        contributions[g] = values * (spread / sd) if sd > 0 else values
    interactions = rng.normal(0.0, interaction_sd, (num_groups, num_groups, size, size))
    return PoolTruth(subsets, contributions, interactions)


def _name(assignment: Sequence[str]) -> str:
    return "/".join(assignment)


def simulate_pool_search(truth: PoolTruth, model: StageModel, pool_size: int, plan: RacePlan, rng: np.random.Generator, *,
                         block_size: int | None = None, recalled: Sequence[str] | None = RECALLED_S4,
                         finalists: int = 3, terms: str = METHODS, second_pool: int = 0, narrow: int = 3) -> dict:
    """One pool search (module doc) on a known truth.

    Args:
        truth: the true errors.
        model: trial noise, contexts and failures (``StageModel``).
        pool_size: designs in the pool, each trained once.
        plan: the final race's plan.
        rng: the only source of randomness.
        block_size: designs per block sharing one context (a seed), fitted with block fixed effects
            (``pool_size`` or more: one context for the whole pool, absorbed by the intercept);
            None: every design has its own context and the fit has no blocks.
        recalled: an assignment always raced (the recalled T5-base S4), or None.
        finalists: options in the final race: the best predicted ones, and ``recalled``.
        terms: the effects model's parametrization (``"methods"`` or ``"subsets"``, :func:`fit_effects`).
        second_pool: designs in a second pool narrowed to each group's ``narrow`` best predicted subsets
            (0: none), fitted alone with per-(group, subset) dummies; the finalists come from that fit.
        narrow: subsets kept per group for the second pool.

    Returns:
        A dict: ``chosen`` (the race's winner) and its ``chosen_error``, ``best`` and ``best_error`` (the
        truth's), ``regret`` (their difference), ``predicted`` (the fit's best) and its ``predicted_regret``,
        ``finalists``, ``race_status``, ``pool_trials``, ``race_trials`` and ``trials`` (their sum).
    """
    if not isinstance(finalists, int) or finalists < 2:
        raise ValueError(f"finalists={finalists!r} must be an integer >= 2: a race needs two options")
    groups = truth.num_groups
    fit, _ = _pool_fit(truth, model, balanced_assignments(groups, pool_size, rng, truth.subsets), rng, block_size, terms,
                       truth.subsets)
    candidates = truth.subsets
    if second_pool:
        candidates = narrowed_subsets(fit, truth.subsets, keep=min(narrow, len(truth.subsets)))
        fit, trained = _pool_fit(truth, model, balanced_assignments(groups, second_pool, rng, candidates), rng, block_size,
                                 SUBSETS, candidates)
    ranked = [a for a, _ in best_assignments(fit, candidates, top=finalists)]
    recalled = tuple(recalled) if recalled is not None else None
    options = [a for a in ranked if a != recalled][:finalists - 1] + [recalled] if recalled else ranked
    options.sort(key=lambda a: ranked.index(a) if a in ranked else len(ranked))  # race order breaks ties: best predicted first
    by_name = {_name(a): a for a in options}
    race_contexts: dict[int, float] = {}

    def draw_block(block: int, alive: tuple[str, ...]) -> dict:
        context = race_contexts.setdefault(block, float(rng.normal(0.0, model.context_sd)))
        return {name: model.trial(truth.error(by_name[name]), context, rng) for name in alive}

    result = race(tuple(by_name), draw_block, plan)
    chosen = by_name[result.winner]
    best, best_error = truth.best()
    chosen_error = truth.error(chosen)
    race_trials = trials_used(result)
    return {"chosen": chosen, "chosen_error": chosen_error, "best": best, "best_error": best_error,
            "regret": chosen_error - best_error, "predicted": ranked[0], "predicted_regret": truth.error(ranked[0]) - best_error,
            "finalists": options, "race_status": result.status, "pool_trials": pool_size + second_pool,
            "race_trials": race_trials, "trials": pool_size + second_pool + race_trials}


def _pool_fit(truth: PoolTruth, model: StageModel, assignments, rng: np.random.Generator, block_size, terms, levels):
    """Train a pool on the truth (one context per design, or per block of ``block_size``) and fit its effects."""
    pool_size = len(assignments)
    block_of = [i // block_size if block_size else i for i in range(pool_size)]
    contexts = rng.normal(0.0, model.context_sd, block_of[-1] + 1)
    results = [model.trial(truth.error(a), float(contexts[block_of[i]]), rng) for i, a in enumerate(assignments)]
    blocks = block_of if block_size and block_of[-1] > 0 else None  # one block for the whole pool: the intercept absorbs it
    failed = np.array([r is None for r in results])
    errors = fill_pool_failures([math.nan if r is None else r for r in results], failed, blocks)
    return fit_effects(errors, assignments, truth.num_groups, blocks, terms=terms, levels=levels), pool_size


def simulate_greedy(truth: PoolTruth, model: StageModel, n: int, rng: np.random.Generator) -> dict:
    """The paper's greedy search on a known truth (module doc): ``groups x subsets x n`` trials.

    Returns:
        A dict with ``chosen``, ``chosen_error``, ``best``, ``best_error``, ``regret`` and ``trials``.
    """
    groups, size = truth.num_groups, len(truth.subsets)
    table = truth.table()
    fixed: list[int] = []
    for g in range(groups):
        means = np.full(size, np.inf)
        for s in range(size):
            rest = rng.integers(size, size=(n, groups - g - 1))
            kept = []
            for row in rest:
                index = tuple(fixed) + (s,) + tuple(int(i) for i in row)
                error = model.trial(float(table[index]), float(rng.normal(0.0, model.context_sd)), rng)
                if error is not None:
                    kept.append(error)
            if kept:
                means[s] = np.mean(kept)
        fixed.append(int(np.argmin(means)))  # lowest mean; ties and all-failed: the subset listed first
    chosen = tuple(truth.subsets[i] for i in fixed)
    best, best_error = truth.best()
    chosen_error = float(table[tuple(fixed)])
    return {"chosen": chosen, "chosen_error": chosen_error, "best": best, "best_error": best_error,
            "regret": chosen_error - best_error, "trials": groups * size * n}
