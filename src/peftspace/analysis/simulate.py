"""Synthetic stages with known truth, to measure what a decision procedure gets right and what it costs.

A stage compares options whose true mean errors are given. A trial's error is

    true mean of its option + context + interaction + noise

where the **context** is everything the stage does not compare (the other components of the design,
the seed, the data order): shared by the options of one paired block, drawn anew for every design
of the paper's unpaired protocol; the **interaction** (option x context) is drawn per trial; the
**noise** is Student-t with ``noise_df`` degrees of freedom scaled to ``noise_sd`` (heavy tails);
and a trial fails (no error) with probability ``failure_rate``.

Two protocols run on the same truth: :func:`simulate_race` (paired blocks, racing with stated error
control: :mod:`peftspace.analysis.racing`) and :func:`simulate_paper` (``n`` independent designs per
option, failures dropped, lowest mean wins: the paper's fixed-N protocol as ``--protocol paper``
runs it). :func:`estimate_variances` estimates the context and noise variances from real trials (designs
trained with several seeds); :func:`estimate_block_variances` estimates the context variance and the
residual distribution from a real race's blocks, and a ``StageModel`` given ``residuals`` draws each
trial's interaction + noise from them (the real tails and modes, not a t distribution). numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from peftspace.analysis.racing import RacePlan, race, trials_used


@dataclass(frozen=True)
class StageModel:
    """How synthetic trial errors arise (error points; see the module doc)."""

    context_sd: float = 7.0
    interaction_sd: float = 1.0
    noise_sd: float = 1.5
    noise_df: float = 3.0  # Student-t degrees of freedom: heavy tails (inf: normal)
    failure_rate: float = 0.05
    # When given: each trial's interaction + noise is one of these, drawn uniformly (an empirical distribution,
    # e.g. estimate_block_variances' residuals); interaction_sd, noise_sd and noise_df are then unused.
    residuals: tuple[float, ...] = field(default=(), repr=False)

    def noise(self, rng: np.random.Generator, size=None):
        if not np.isfinite(self.noise_df):
            return rng.normal(0.0, self.noise_sd, size)
        scale = self.noise_sd / np.sqrt(self.noise_df / (self.noise_df - 2.0))  # unit variance, then noise_sd
        return scale * rng.standard_t(self.noise_df, size)

    def trial(self, mean: float, context: float, rng: np.random.Generator) -> float | None:
        """One trial's error (None when it fails)."""
        if self.residuals:
            error = mean + context + self.residuals[int(rng.integers(len(self.residuals)))]
        else:
            error = mean + context + rng.normal(0.0, self.interaction_sd) + float(self.noise(rng))
        return None if rng.random() < self.failure_rate else float(error)


@dataclass(frozen=True)
class Outcome:
    """One simulated stage: the winner, the options kept (survivors), whether anything was eliminated, trials used."""

    winner: str
    kept: tuple[str, ...]
    eliminated: tuple[str, ...]
    trials: int
    status: str


def simulate_race(means: dict[str, float], model: StageModel, plan: RacePlan, rng: np.random.Generator) -> Outcome:
    """One racing stage on paired blocks: every block shares one context across its options."""
    contexts: dict[int, float] = {}

    def draw_block(block: int, alive: tuple[str, ...]) -> dict:
        context = contexts.setdefault(block, float(rng.normal(0.0, model.context_sd)))
        return {option: model.trial(means[option], context, rng) for option in alive}

    result = race(tuple(means), draw_block, plan)
    eliminated = tuple(o for o in means if o not in result.survivors)
    return Outcome(result.winner, result.survivors, eliminated, trials_used(result), result.status)


def simulate_paper(means: dict[str, float], model: StageModel, n: int, rng: np.random.Generator) -> Outcome:
    """The paper's protocol: ``n`` independent designs per option (own context each), failures dropped, lowest mean wins."""
    averages = {}
    for option, mean in means.items():
        errors = [model.trial(mean, float(rng.normal(0.0, model.context_sd)), rng) for _ in range(n)]
        kept = [e for e in errors if e is not None]
        averages[option] = float(np.mean(kept)) if kept else np.inf
    winner = min(means, key=lambda o: (averages[o], list(means).index(o)))
    return Outcome(winner, (winner,), (), n * len(means), "fixed")


@dataclass(frozen=True)
class Summary:
    """Rates over many simulated stages of one scenario."""

    runs: int
    best_kept: float  # the truly best option among the kept ones
    best_chosen: float  # the winner is the truly best option
    within_delta: float  # the winner's true mean is within delta of the best
    any_eliminated: float  # some option eliminated (all wrong when every option is equally good)
    median_trials: float
    mean_trials: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def summarize(outcomes: Sequence[Outcome], means: dict[str, float], delta: float) -> Summary:
    best = min(means.values())
    best_options = {o for o, m in means.items() if m == best}
    trials = np.array([o.trials for o in outcomes], dtype=float)
    return Summary(
        runs=len(outcomes),
        best_kept=float(np.mean([bool(best_options & set(o.kept)) for o in outcomes])),
        best_chosen=float(np.mean([o.winner in best_options for o in outcomes])),
        within_delta=float(np.mean([means[o.winner] - best < delta + 1e-12 for o in outcomes])),
        any_eliminated=float(np.mean([bool(o.eliminated) for o in outcomes])),
        median_trials=float(np.median(trials)), mean_trials=float(trials.mean()))


def estimate_variances(rows: Sequence[dict]) -> dict:
    """Context (between-design) and noise (within-design, between-seed) variances from real trials.

    ``rows``: dicts with ``design`` (any hashable key), ``seed`` and ``error``. One-way random-effects
    ANOVA (method of moments): the noise variance is the pooled within-design variance over designs
    with two or more seeds; the context variance is the variance of design means minus the noise
    variance over the harmonic mean number of seeds (floored at 0).
    """
    groups: dict = {}
    for row in rows:
        groups.setdefault(row["design"], []).append(float(row["error"]))
    repeated = [np.array(v) for v in groups.values() if len(v) >= 2]
    if len(groups) < 2 or not repeated:
        raise ValueError("estimating variances needs two or more designs, one of them with two or more seeds")
    within = float(sum(((v - v.mean()) ** 2).sum() for v in repeated) / sum(v.size - 1 for v in repeated))
    means = np.array([np.mean(v) for v in groups.values()])
    sizes = np.array([len(v) for v in groups.values()], dtype=float)
    harmonic = float(len(sizes) / np.sum(1.0 / sizes))
    between = max(0.0, float(np.var(means, ddof=1)) - within / harmonic)
    return {"designs": len(groups), "trials": int(sizes.sum()), "noise_var": within, "noise_sd": within ** 0.5,
            "context_var": between, "context_sd": between ** 0.5}


def estimate_block_variances(stages: Sequence[np.ndarray]) -> dict:
    """The context variance and the residual distribution of real racing stages.

    ``stages``: one array per stage, blocks x options, each cell the validation error of that option's
    design in that block (NaN where it was not run, e.g. after an elimination). Per stage, a two-way
    additive least-squares fit (block + option) on the observed cells; the residual variance is the
    residual sum of squares over its degrees of freedom (observed cells minus the fit's rank), pooled
    over stages by degrees of freedom; the context variance is the variance of the fitted block effects
    minus the residual variance each block's mean carries (mean of residual variance / cells in the
    block), pooled by blocks and floored at 0. With complete blocks these are the two-way ANOVA's
    method-of-moments estimates: (MS_blocks - MS_residual) / options and MS_residual. ``residuals``
    are the fitted residuals scaled by sqrt(cells / df), so their mean square is the residual variance.
    """
    residuals, ssr, dfs, context, weights = [], 0.0, 0, [], []
    for errors in stages:
        errors = np.asarray(errors, dtype=float)
        keep_rows = np.isfinite(errors).sum(axis=1) >= 2  # a block with one option says nothing about options
        errors = errors[keep_rows][:, np.isfinite(errors[keep_rows]).any(axis=0)]
        blocks, options = errors.shape
        if blocks < 2 or options < 2:
            continue
        rows, cols = np.nonzero(np.isfinite(errors))
        design = np.zeros((rows.size, blocks + options - 1))
        design[np.arange(rows.size), rows] = 1.0
        design[cols > 0, blocks + cols[cols > 0] - 1] = 1.0
        y = errors[rows, cols]
        beta, *_ = np.linalg.lstsq(design, y, rcond=None)
        fitted = y - design @ beta
        df = rows.size - int(np.linalg.matrix_rank(design))
        if df <= 0:
            continue
        variance = float(fitted @ fitted) / df
        ssr, dfs = ssr + float(fitted @ fitted), dfs + df
        residuals.extend((fitted * np.sqrt(rows.size / df)).tolist())
        cells = np.bincount(rows, minlength=blocks)
        context.append(float(np.var(beta[:blocks], ddof=1)) - float(np.mean(variance / cells)))
        weights.append(blocks)
    if not dfs:
        raise ValueError("estimating block variances needs a stage with two or more blocks of two or more options "
                         "and residual degrees of freedom")
    residual_var = ssr / dfs
    context_var = max(0.0, float(np.average(context, weights=weights)))
    return {"stages": len(weights), "cells": len(residuals), "residual_df": dfs, "residual_var": residual_var,
            "residual_sd": residual_var ** 0.5, "context_var": context_var, "context_sd": context_var ** 0.5,
            "residuals": tuple(residuals)}
