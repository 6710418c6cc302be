"""Ranking a component's options (e.g. the five grouping patterns) by their designs' errors, with a verdict.

The ranking statistic is the **mean error** (lower is better): it is what the bootstrap interval of
the best-vs-runner-up difference is about, so order and verdict speak of the same quantity. Medians
and KS distances to the best are reported beside it for reading, not for deciding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from peftspace.analysis.stats import Interval, as_errors, bootstrap_ci, bootstrap_difference, ks_test

DECIDED, UNDECIDED = "decided", "undecided"


@dataclass(frozen=True)
class OptionSummary:
    """One option's errors: size, mean (with its bootstrap CI), median, and its KS test against the best.

    ``ks_vs_best`` / ``ks_p_vs_best`` are ``ks_test(this option, best option)``; the best itself has
    ``D = 0`` and ``p = 1``.
    """

    name: str
    n: int
    mean: float
    median: float
    mean_ci: Interval
    ks_vs_best: float
    ks_p_vs_best: float

    def to_dict(self) -> dict:
        return {"name": self.name, "n": self.n, "mean": self.mean, "median": self.median,
                "mean_ci": self.mean_ci.to_dict(), "ks_vs_best": self.ks_vs_best, "ks_p_vs_best": self.ks_p_vs_best}


@dataclass(frozen=True)
class Ranking:
    """Options ordered best first, and whether the best is decided over the runner-up.

    ``difference`` is the bootstrap interval of ``mean error(runner-up) - mean error(best)``; the
    verdict is ``"decided"`` when its lower end is above 0 (the interval excludes 0, at
    ``confidence``), else ``"undecided"``.
    """

    options: tuple[OptionSummary, ...]
    difference: Interval
    verdict: str
    confidence: float
    n_resamples: int
    statistic: str = "mean error"

    @property
    def best(self) -> str:
        return self.options[0].name

    @property
    def runner_up(self) -> str:
        return self.options[1].name

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)

    def to_dict(self) -> dict:
        """Plain JSON-ready data (str, int, float, lists, dicts)."""
        return {"statistic": self.statistic, "confidence": self.confidence, "n_resamples": self.n_resamples,
                "best": self.best, "runner_up": self.runner_up, "verdict": self.verdict,
                "difference": self.difference.to_dict(), "options": [o.to_dict() for o in self.options]}


def rank_options(errors_by_option: Mapping[str, Sequence[float]], confidence: float = 0.95, n_resamples: int = 2000, *,
                 rng: np.random.Generator, min_n: int = 2) -> Ranking:
    """Rank options by mean error and decide whether the best beats the runner-up.

    Order: ascending mean error; ties broken by median, then by name (so the order is deterministic).
    For each option a percentile-bootstrap CI of its mean and a KS test against the best are
    reported. The verdict compares the two best options: ``bootstrap_difference(runner_up, best)``
    on the mean, ``"decided"`` if that interval lies wholly above 0 at ``confidence``, else
    ``"undecided"`` (the data do not separate them; sample more designs or carry both forward).

    Randomness: ``rng`` is drawn from in a fixed order (each option's CI in rank order, then the
    difference), so the same seed and data give the same Ranking.

    Args:
        errors_by_option: option name -> the errors of the designs sampled under that option.
        confidence: of every interval, in (0, 1).
        n_resamples: bootstrap samples per interval.
        rng: a ``numpy.random.Generator``.
        min_n: the fewest errors an option may have (a bootstrap of one value is a zero-width interval
            that would "decide" anything).

    Raises:
        ValueError: fewer than two options, or options with too few or non-finite errors (all listed).
    """
    if len(errors_by_option) < 2:
        raise ValueError(f"ranking needs at least two options, got {list(errors_by_option)}")
    problems, errors = [], {}
    for name, values in errors_by_option.items():
        try:
            errors[str(name)] = as_errors(values, f"option {name!r}")
        except ValueError as error:
            problems.append(str(error))
            continue
        if errors[str(name)].size < min_n:
            problems.append(f"option {name!r} has {errors[str(name)].size} error(s), fewer than min_n={min_n}")
    if problems:
        raise ValueError("cannot rank options: " + "; ".join(problems))
    order = sorted(errors, key=lambda k: (float(np.mean(errors[k])), float(np.median(errors[k])), k))
    best = errors[order[0]]
    summaries = []
    for name in order:
        values = errors[name]
        d, p = ks_test(values, best)
        summaries.append(OptionSummary(name, int(values.size), float(np.mean(values)), float(np.median(values)),
                                       bootstrap_ci(values, np.mean, confidence, n_resamples, rng=rng), d, p))
    difference = bootstrap_difference(errors[order[1]], best, np.mean, confidence, n_resamples, rng=rng)
    verdict = DECIDED if difference.low > 0 else UNDECIDED
    return Ranking(tuple(summaries), difference, verdict, float(confidence), int(n_resamples))
