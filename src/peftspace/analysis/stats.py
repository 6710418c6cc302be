"""Statistics for comparing design spaces: errors, EDFs, KS distance and bootstrap intervals.

Conventions, used everywhere in this package:

* **Scores** are per-task metrics on a 0-100 scale, higher is better (``peftspace.tasks.metrics``;
  MCC and correlations lie in [-100, 100]). The **error** of a design is ``100 - mean(normalized
  task scores)``: lower is better.
* The **EDF** of n errors is the right-continuous step function ``F(t) = #{errors <= t} / n``. As
  arrays it is the sorted errors ``x`` with ``F[i] = (i + 1) / n``; tied errors take successive
  steps, so only the last of a run of ties carries the value ``F(t)`` (use :func:`edf_at`).
* **Randomness** comes only from a ``numpy.random.Generator`` passed in; global state is never seeded.

numpy only at import time; scipy is imported by :func:`ks_test` when it is called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, NamedTuple

import numpy as np


def as_errors(values, name: str = "errors") -> np.ndarray:
    """``values`` as a 1-D float array, or a ValueError if it is empty, not 1-D or not all finite."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of numbers, got an array of shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: an EDF, KS test or bootstrap needs at least one value")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{name} holds {bad.size} non-finite value(s) (NaN or inf) at positions {bad[:10].tolist()}: "
                         f"drop failed or diverged trials before computing statistics")
    return array


def _as_weights(weights, n: int, name: str = "weights") -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"{name} must have one weight per value ({n}), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"{name} must be finite, non-negative and not all zero")
    return w / w.sum()


# ----------------------------------------------------------------------------------------- errors
def error_from_scores(scores: Mapping[str, float] | Sequence[Mapping[str, float]],
                      normalizers: Mapping[str, float] | Literal["best"] | None = None) -> float | np.ndarray:
    """The error of one design, or of each of several, from its per-task scores.

    ``error = 100 - mean over tasks of normalized score``, every task weighing the same. Scores are on
    a 0-100 scale with higher better (the convention of ``peftspace.tasks.metrics``), so an error is
    on the same scale with lower better.

    Normalization (optional) puts tasks of different difficulty on one footing: each score becomes
    ``100 * score / reference[task]``, so a design matching the reference on every task has error 0.
    With ``normalizers="best"`` the reference of a task is the best score any of the given designs
    reached on it; a mapping gives the references explicitly (e.g. full fine-tuning's scores, or the
    best seen over a whole sweep, so that errors from several calls stay comparable). References must
    be positive.

    Args:
        scores: task -> score for one design, or a list of such mappings (every design on the same tasks).
        normalizers: None (raw scores), ``"best"``, or task -> positive reference score.

    Returns:
        A float for one mapping; a float array with one error per design for a list.

    Raises:
        ValueError: listing every problem at once: no tasks, a non-finite score, designs on different
            task sets, a missing or non-positive reference.
    """
    single = isinstance(scores, Mapping)
    designs = [scores] if single else list(scores)
    if not designs:
        raise ValueError("error_from_scores needs at least one design's scores")
    tasks = sorted(designs[0])
    problems = []
    if not tasks:
        problems.append("design 0 has no task scores")
    for i, design in enumerate(designs):
        if sorted(design) != tasks:
            problems.append(f"design {i} is scored on {sorted(design)}, design 0 on {tasks}: average over the same tasks")
        for task, value in design.items():
            try:
                ok = np.isfinite(float(value))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                problems.append(f"design {i}, task {task!r}: score {value!r} is not a finite number")
    if problems:
        raise ValueError("cannot compute errors: " + "; ".join(problems))
    table = np.array([[float(d[t]) for t in tasks] for d in designs])  # designs x tasks
    if normalizers is not None:
        if isinstance(normalizers, str):
            if normalizers != "best":
                raise ValueError(f"normalizers must be None, 'best' or a task -> reference mapping, got {normalizers!r}")
            reference = table.max(axis=0)
        else:
            missing = [t for t in tasks if t not in normalizers]
            if missing:
                raise ValueError(f"normalizers lack a reference for {missing}; they cover {sorted(normalizers)}")
            reference = np.array([float(normalizers[t]) for t in tasks])
        bad = [t for t, r in zip(tasks, reference) if not (np.isfinite(r) and r > 0)]
        if bad:
            raise ValueError(f"the reference score of {bad} is not positive ({reference.tolist()} for {tasks}): "
                             f"normalizing by it is meaningless")
        table = 100.0 * table / reference
    errors = 100.0 - table.mean(axis=1)
    return float(errors[0]) if single else errors


# ------------------------------------------------------------------------------------------ EDFs
def edf(errors) -> tuple[np.ndarray, np.ndarray]:
    """The empirical distribution function of errors as arrays.

    Convention: ``x`` is the errors sorted ascending and ``F[i] = (i + 1) / n``. Tied errors get
    successive steps (``edf([1, 2, 2])`` gives ``F = [1/3, 2/3, 1]``), so ``F[i]`` equals the EDF's
    value ``#{errors <= x[i]} / n`` only at the last of a run of ties: evaluate with :func:`edf_at`.

    Args:
        errors: one or more finite numbers.

    Returns:
        ``(x, F)``, two float arrays of length n.

    Raises:
        ValueError: empty input, or a NaN or infinite value.
    """
    x = np.sort(as_errors(errors))
    return x, np.arange(1, x.size + 1) / x.size


def edf_at(errors, t, weights=None):
    """The right-continuous EDF ``F(t)``: the fraction (or weight) of errors ``<= t``.

    This is the function comparisons use (KS distance, "fraction of designs below error t").

    Args:
        errors: one or more finite numbers.
        t: a number or an array of numbers (not NaN; +-inf allowed).
        weights: optional non-negative weight per error (normalized to sum 1), e.g. from
            :func:`normalized_edf`; default equal weights ``1/n``.

    Returns:
        A float for a scalar ``t``, else an array shaped like ``t``.
    """
    values = as_errors(errors)
    w = _as_weights(weights, values.size)
    t_array = np.asarray(t, dtype=float)
    if np.any(np.isnan(t_array)):
        raise ValueError("edf_at: t must not be NaN")
    order = np.argsort(values, kind="stable")
    cumulative = np.concatenate([[0.0], np.cumsum(w[order])])
    result = cumulative[np.searchsorted(values[order], t_array, side="right")] / cumulative[-1]
    return float(result) if result.ndim == 0 else result


class NormalizedEDF(NamedTuple):
    """A complexity-normalized EDF: sorted errors ``x``, weighted steps ``F``, the per-design ``weights``
    (input order, summing to 1) and the bin ``edges`` (in parameter counts) that were used."""

    x: np.ndarray
    F: np.ndarray
    weights: np.ndarray
    edges: np.ndarray


def normalized_edf(errors, params, bins: int | Sequence[float] = 10, reference: Sequence[float] | None = None) -> NormalizedEDF:
    """The EDF of errors with designs reweighted to a common complexity distribution.

    Following Radosavovic et al. (the normalized EDF of "On Network Design Spaces for Visual
    Recognition" and "Designing Network Design Spaces"): two spaces whose designs differ in size would
    otherwise be compared partly on size. Procedure:

    1. Bin the trainable-parameter counts. ``bins=k`` makes k bins of equal width in log10 from the
       smallest to the largest count; a sequence gives explicit, strictly increasing edges (in
       parameter counts, e.g. ``np.geomspace(lo, hi, k + 1)``; use the same edges for every space
       you compare). Bins are half-open ``[e_j, e_{j+1})`` except the last, which is closed
       ``[e_{k-1}, e_k]``: a count equal to the top edge belongs to the last bin (the nds
       notebooks' edge-bin bug dropped it). This matches ``np.histogram(params, edges)``.
    2. Give every design in bin j the weight ``reference[j] / count[j]``: each bin's total weight is
       its reference mass. Default reference: uniform over the bins. A bin with designs but zero
       reference mass weighs 0; the reference mass of an empty bin is lost, and the weights are
       renormalized to sum 1 (so "uniform" means uniform over the occupied bins).
    3. Return the weighted EDF: errors sorted ascending (stable, so ties keep their input order and
       take successive steps) and ``F`` the cumulative weight, ending at 1.

    Args:
        errors: one finite error per design.
        params: its trainable-parameter count (positive), same length.
        bins: number of log-spaced bins, or explicit edges covering every count.
        reference: target mass per bin (non-negative, any total); default uniform.

    Returns:
        A :class:`NormalizedEDF` ``(x, F, weights, edges)``; evaluate it with
        ``edf_at(errors, t, weights=result.weights)``.

    Raises:
        ValueError: mismatched lengths, a non-positive or non-finite count, bad edges, a count
            outside explicit edges, a reference of the wrong length, or zero mass on every occupied bin.
    """
    values = as_errors(errors)
    counts = as_errors(params, "params")
    if counts.size != values.size:
        raise ValueError(f"params has {counts.size} entries, errors {values.size}: give one count per design")
    if np.any(counts <= 0):
        raise ValueError(f"params must be positive (log-scale bins), got {counts[counts <= 0][:5].tolist()}")
    if isinstance(bins, (int, np.integer)):
        if bins < 1:
            raise ValueError(f"bins must be at least 1, got {bins}")
        edges = 10.0 ** np.linspace(np.log10(counts.min()), np.log10(counts.max()), int(bins) + 1)
        edges[0], edges[-1] = counts.min(), counts.max()  # exact ends: no rounding through log10
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
            raise ValueError(f"bins must be an int or at least two finite, strictly increasing edges, got {bins!r}")
        outside = counts[(counts < edges[0]) | (counts > edges[-1])]
        if outside.size:
            raise ValueError(f"{outside.size} parameter count(s) lie outside the edges [{edges[0]:g}, {edges[-1]:g}], "
                             f"e.g. {outside[:3].tolist()}: widen the edges")
    n_bins = edges.size - 1
    if edges[0] == edges[-1]:  # every design has the same count: a single bin
        index = np.zeros(counts.size, dtype=int)
    else:
        index = np.minimum(np.searchsorted(edges, counts, side="right") - 1, n_bins - 1)  # top edge inclusive
    mass = np.ones(n_bins) if reference is None else np.asarray(reference, dtype=float)
    if mass.shape != (n_bins,) or not np.all(np.isfinite(mass)) or np.any(mass < 0):
        raise ValueError(f"reference must be {n_bins} non-negative numbers (one per bin), got {reference!r}")
    per_bin = np.bincount(index, minlength=n_bins)
    weights = mass[index] / per_bin[index]
    if weights.sum() <= 0:
        raise ValueError("the reference puts zero mass on every bin that holds a design")
    weights = weights / weights.sum()
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return NormalizedEDF(values[order], cumulative / cumulative[-1], weights, edges)


# -------------------------------------------------------------------------------------------- KS
def ks_distance(a, b, weights_a=None, weights_b=None) -> float:
    """The two-sample Kolmogorov-Smirnov distance ``D = max_t |F_a(t) - F_b(t)|``.

    Both EDFs are right-continuous (:func:`edf_at`) and compared at every value of either sample,
    where the supremum is reached; ties within or across samples are handled exactly. With weights
    (e.g. from :func:`normalized_edf`) it compares weighted EDFs.
    """
    a, b = as_errors(a, "a"), as_errors(b, "b")
    pooled = np.concatenate([a, b])
    return float(np.max(np.abs(edf_at(a, pooled, weights_a) - edf_at(b, pooled, weights_b))))


def ks_test(a, b) -> tuple[float, float]:
    """The two-sided two-sample KS test: ``(D, p)`` from ``scipy.stats.ks_2samp``.

    scipy picks the exact p-value for small samples and the asymptotic one otherwise
    (``method="auto"``). ``D`` equals :func:`ks_distance` (unweighted).
    """
    from scipy.stats import ks_2samp

    result = ks_2samp(as_errors(a, "a"), as_errors(b, "b"), alternative="two-sided", method="auto")
    return float(result.statistic), float(result.pvalue)


# ------------------------------------------------------------------------------------- bootstrap
@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval: the statistic on the data (``estimate``) and ``[low, high]``."""

    estimate: float
    low: float
    high: float
    confidence: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def excludes(self, value: float = 0.0) -> bool:
        """True if ``value`` lies outside ``[low, high]``."""
        return not (self.low <= value <= self.high)

    def to_dict(self) -> dict:
        return asdict(self)


_CHUNK = 1_000_000  # resampled values held in memory at once


def _check_bootstrap(confidence: float, n_resamples: int, rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), "
                        f"got {type(rng).__name__}; global random state is never used")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")


def _apply(statistic: Callable, samples: np.ndarray) -> np.ndarray:
    """``statistic`` over each row: vectorized through ``axis=-1`` when it supports that, else row by row."""
    try:
        result = np.asarray(statistic(samples, axis=-1), dtype=float)
        if result.shape == samples.shape[:1]:
            return result
    except TypeError:
        pass
    return np.array([float(statistic(row)) for row in samples])


def _resample(values: np.ndarray, statistic: Callable, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(n_resamples)
    step = max(1, _CHUNK // values.size)
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        out[start:stop] = _apply(statistic, values[rng.integers(0, values.size, size=(stop - start, values.size))])
    return out


def _interval(estimate, replicates: np.ndarray, confidence: float) -> Interval:
    estimate = float(estimate)
    if not np.isfinite(estimate) or not np.all(np.isfinite(replicates)):
        raise ValueError("the statistic returned a non-finite value")
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return Interval(estimate, float(low), float(high), float(confidence))


def bootstrap_ci(values, statistic: Callable = np.mean, confidence: float = 0.95, n_resamples: int = 2000, *,
                 rng: np.random.Generator) -> Interval:
    """A percentile-bootstrap confidence interval for a statistic of one sample.

    Draws ``n_resamples`` samples of size n with replacement, applies ``statistic`` to each, and
    returns the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (numpy's linear
    interpolation) of those replicates. For a quantile pass e.g. ``functools.partial(np.quantile,
    q=0.25)`` or ``np.median``. With n = 1 every replicate equals the value (a zero-width interval):
    the bootstrap says nothing about small samples.

    Args:
        values: one or more finite numbers.
        statistic: maps a 1-D array to a number; used vectorized if it accepts ``axis=-1``.
        confidence: in (0, 1).
        n_resamples: number of bootstrap samples.
        rng: the only source of randomness; the same seed gives the same interval.
    """
    _check_bootstrap(confidence, n_resamples, rng)
    values = as_errors(values, "values")
    return _interval(statistic(values), _resample(values, statistic, int(n_resamples), rng), confidence)


def bootstrap_difference(a, b, statistic: Callable = np.mean, confidence: float = 0.95, n_resamples: int = 2000, *,
                         rng: np.random.Generator) -> Interval:
    """A percentile-bootstrap interval for ``statistic(a) - statistic(b)``, two independent samples.

    Each replicate resamples ``a`` and ``b`` independently (``a``'s draws first) and takes the
    difference of the statistics. To compare two spaces' errors, a CI wholly above 0 says ``b`` has
    the lower (better) statistic at the stated confidence. Arguments as in :func:`bootstrap_ci`.
    """
    _check_bootstrap(confidence, n_resamples, rng)
    a, b = as_errors(a, "a"), as_errors(b, "b")
    replicates = _resample(a, statistic, int(n_resamples), rng) - _resample(b, statistic, int(n_resamples), rng)
    return _interval(float(statistic(a)) - float(statistic(b)), replicates, confidence)
