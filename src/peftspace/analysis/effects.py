"""Strategy effects from one pool of designs: a regression of error on "method m in group g".

A pool of designs (``peftspace.design.pool.balanced_assignments``) has been trained; each design
assigns every layer group a non-empty subset of the strategies A, P, B, L. The error of a design is
modelled as additive over groups::

    error = intercept + sum over groups g of [ sum over m in S_g of beta[g, m]  +  gamma[g] * (|S_g| >= 2) ]
            (+ the effect of the design's block) + noise

``beta[g, m]`` is what method m adds in group g; ``gamma[g]`` is what *combining* methods in group g
costs or gains beyond the sum of their effects (the same for every combination of two or more).

**Why ``|S| >= 2`` and not the number of methods.** ``|S|`` itself is the sum of the group's four
indicators, so a linear term in it is exactly collinear with them. Any function of ``|S|`` that is
affine in ``|S|`` on the sizes the pool uses is collinear with the intercept and the indicators;
``[|S| >= 2]`` is affine on a set of sizes exactly when that set has at most two sizes (on
``{1, 2}`` it equals ``|S| - 1``) or lacks the singletons (then it is the constant 1). So the
column needs the group's subsets to include singletons and at least two other sizes. With all 15
subsets (sizes 1 to 4, every method in every size) that suffices: ``c0 + sum_m c_m [m in S]`` equal
to ``[|S| >= 2]`` on the singletons and pairs forces ``c_m = -1, c0 = 2``, which gives -1, not 1, on
the triples. For shorter subset lists :func:`fit_effects` checks the rank of the pool's matrix and
names the columns it does not identify.

**Per-subset terms** (``terms="subsets"``): the alternative when a group's subsets do not act
additively through their methods. Every group gets a dummy ``"G{g}={S}"`` for every allowed subset
but the first (the reference): 14 columns per group instead of 5, additive over groups still. It
fits any per-group truth, at the price of more coefficients to estimate from the same pool.
``levels`` may also give each group its own subsets (one list per group, each its own reference):
the fit of a second pool narrowed to each group's best few subsets (:func:`narrowed_subsets`).

**Blocks.** Designs that share a seed (data order, head initialisation) share a *context* that can
move their errors by several points together. Give them a common block label: each block after the
first gets a fixed-effect dummy that absorbs its context, and standard errors become
cluster-robust by block. Without blocks, the context of each design is part of the noise.

**Standard errors** are heteroscedasticity-robust: HC3 (MacKinnon and White), i.e. the sandwich
``(X'X)^-1 X' diag(u_i^2 / (1 - h_i)^2) X (X'X)^-1`` with leverages ``h_i``; with blocks, the
cluster-robust sandwich ``c (X'X)^-1 (sum_b X_b' u_b u_b' X_b) (X'X)^-1`` with the usual
small-sample factor ``c = B / (B - 1) * (n - 1) / (n - K)`` (B blocks, n designs, K columns), as
statsmodels' ``cov_type="cluster"`` computes them. A cluster-robust covariance has rank at most B,
so it needs many blocks to say much about K coefficients.

**Failures count.** The regression takes finite errors only: a failed or diverged trial enters at
the worst error of the pool, or of its block when the pool has blocks (as racing fills a failure
with the worst error of its block), so a method that fails often looks worse, never better:
:func:`fill_pool_failures`.

numpy only (and :func:`peftspace.analysis.racing.fill_failures`); no torch, no scipy.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from peftspace.analysis.racing import fill_failures
from peftspace.design.counts import STRATEGIES
from peftspace.design.design import canonical_subset as canonical  # "LA" -> "AL"
from peftspace.design.space import ALL_SUBSETS

SIZE_TERM = "k>=2"
METHODS, SUBSETS = "methods", "subsets"  # the two parametrizations of a group's subset


# -------------------------------------------------------------------------------- design matrix
def _subset_problem(subset, where: str) -> str | None:
    if not isinstance(subset, str) or not subset or any(s not in STRATEGIES for s in subset) or len(set(subset)) != len(subset):
        return f"{where}={subset!r} must be a non-empty string of distinct letters from A, P, B, L"
    return None


def _check_assignments(assignments, num_groups: int) -> list[str]:
    problems = []
    if not isinstance(num_groups, int) or isinstance(num_groups, bool) or num_groups < 1:
        return [f"num_groups={num_groups!r} must be a positive integer"]
    if isinstance(assignments, (str, bytes)) or not isinstance(assignments, Sequence) or not assignments:
        return [f"assignments must be a non-empty list of per-group subset tuples, got {assignments!r:.80}"]
    for i, assignment in enumerate(assignments):
        if isinstance(assignment, str) or not isinstance(assignment, Sequence) or len(assignment) != num_groups:
            problems.append(f"assignment {i} = {assignment!r} must hold one subset for each of the {num_groups} groups")
            continue
        problems += [p for g, s in enumerate(assignment) if (p := _subset_problem(s, f"assignment {i}, group {g + 1}"))]
    return problems


def _block_labels(blocks, n: int) -> tuple[list[str], list]:
    """``(problems, labels)``: the block labels as a list of plain Python values (numpy's ``tolist``)."""
    if blocks is None:
        return [], []
    labels = blocks.tolist() if isinstance(blocks, np.ndarray) else blocks
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence) or not all(isinstance(b, Hashable) for b in labels):
        return [f"blocks must be a list with one hashable label (int or string) per design, got {blocks!r:.80}"], []
    if len(labels) != n:
        return [f"blocks has {len(labels)} labels for {n} designs: give one block label per design"], []
    return [], list(labels)


def per_group(levels) -> bool:
    """Whether ``levels`` gives every group its own subsets (a list of lists) rather than one list for all."""
    return isinstance(levels, Sequence) and not isinstance(levels, str) and bool(levels) and \
        all(isinstance(item, Sequence) and not isinstance(item, str) for item in levels)


def group_levels(levels, g: int) -> Sequence[str]:
    """Group ``g``'s subsets of ``terms="subsets"``: its own list when ``levels`` is per group, else ``levels``."""
    return levels[g] if per_group(levels) else levels


def _check_levels(levels, where: str = "levels") -> list[str]:
    if isinstance(levels, str) or not isinstance(levels, Sequence) or len(levels) < 2:
        return [f"{where}={levels!r} must list two or more subsets (the first is the reference) for terms='subsets'"]
    problems = [p for i, s in enumerate(levels) if (p := _subset_problem(s, f"{where}[{i}]"))]
    if not problems and len({canonical(s) for s in levels}) != len(levels):
        problems.append(f"{where}={list(levels)} lists a subset more than once")
    return problems


def _check_terms(terms, levels, num_groups: int | None = None) -> list[str]:
    if terms == METHODS:
        return []
    if terms != SUBSETS:
        return [f"terms={terms!r} must be {METHODS!r} (method indicators and k>=2) or {SUBSETS!r} (a dummy per subset)"]
    if not per_group(levels):
        return _check_levels(levels)
    problems = [p for g, group in enumerate(levels) for p in _check_levels(group, f"levels[{g}]")]
    if num_groups is not None and len(levels) != num_groups:
        problems.append(f"levels gives {len(levels)} groups' subsets for {num_groups} groups")
    return problems


def group_columns(g: int, terms: str = METHODS, levels=ALL_SUBSETS) -> list[str]:
    """Column names of group ``g`` (0-based): four method indicators and ``k>=2``, or a dummy per non-reference level."""
    if terms == SUBSETS:
        return [f"G{g + 1}={canonical(s)}" for s in group_levels(levels, g)[1:]]
    return [f"G{g + 1}:{m}" for m in STRATEGIES] + [f"G{g + 1}:{SIZE_TERM}"]


def group_features(subset: str, terms: str = METHODS, levels: Sequence[str] = ALL_SUBSETS) -> np.ndarray:
    """One group's part of a design-matrix row: ``[A in S, P in S, B in S, L in S, |S| >= 2]``, or the
    subset's dummies (all zero for the reference level ``levels[0]``)."""
    if terms == SUBSETS:
        names = [canonical(s) for s in levels]
        if canonical(subset) not in names:
            raise ValueError(f"subset {subset!r} is not among the levels {names} the effects were fitted on")
        return np.array([float(canonical(subset) == s) for s in names[1:]])
    return np.array([float(m in subset) for m in STRATEGIES] + [float(len(subset) >= 2)])


def assignment_row(assignment: Sequence[str], terms: str = METHODS, levels=ALL_SUBSETS) -> np.ndarray:
    """The group part of a design-matrix row: :func:`group_features` of each group's subset, in group order."""
    return np.concatenate([group_features(s, terms, group_levels(levels, g)) for g, s in enumerate(assignment)])


def assignment_matrix(assignments: Sequence[Sequence[str]], num_groups: int, blocks=None, *, terms: str = METHODS,
                      levels=ALL_SUBSETS) -> tuple[np.ndarray, list[str]]:
    """The design matrix of a pool and its column names.

    Columns: ``"intercept"``; for every group g (1-based in names) the indicators ``"G{g}:A"``,
    ``"G{g}:P"``, ``"G{g}:B"``, ``"G{g}:L"`` (method in the group's subset) and ``"G{g}:k>=2"`` (the
    group combines two or more methods; the module doc says why this term and when it is
    identified), or with ``terms="subsets"`` a dummy ``"G{g}={S}"`` per level but the first; then,
    when ``blocks`` is given, a dummy ``"block={label}"`` for every block but the first to appear
    (the reference).

    Args:
        assignments: one tuple of ``num_groups`` subsets per design (letters from A, P, B, L).
        num_groups: layer groups.
        blocks: optional block label per design (designs sharing a seed share a label).
        terms: ``"methods"`` (default) or ``"subsets"``.
        levels: the subsets of ``terms="subsets"``, the first the reference, or one such list per group
            (ignored for methods).

    Raises:
        ValueError: listing every malformed assignment, terms or block argument.
    """
    problems = _check_assignments(assignments, num_groups) + _check_terms(terms, levels, num_groups)
    if not problems:
        more, labels = _block_labels(blocks, len(assignments))
        problems += more
    if not problems and terms == SUBSETS:
        names = [[canonical(s) for s in group_levels(levels, g)] for g in range(num_groups)]
        problems += [f"assignment {i}, group {g + 1}: subset {s!r} is not among the levels {names[g]}"
                     for i, a in enumerate(assignments) for g, s in enumerate(a) if canonical(s) not in names[g]]
    if problems:
        raise ValueError("assignment_matrix: " + "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else ""))
    columns = ["intercept"] + [c for g in range(num_groups) for c in group_columns(g, terms, levels)]
    X = np.column_stack([np.ones(len(assignments)), np.array([assignment_row(a, terms, levels) for a in assignments])])
    if labels:
        order = list(dict.fromkeys(labels))  # the first block to appear is the reference
        X = np.column_stack([X, np.array([[float(label == b) for b in order[1:]] for label in labels]).reshape(len(labels), -1)])
        columns += [f"block={label}" for label in order[1:]]
    return X, columns


# ------------------------------------------------------------------------------------ robust OLS
class OLS(NamedTuple):
    """Least squares with a robust covariance: coefficients, their covariance, residuals, residual df."""

    coef: np.ndarray
    cov: np.ndarray
    residuals: np.ndarray
    df_resid: int


def robust_ols(X: np.ndarray, y: np.ndarray, clusters=None) -> OLS:
    """OLS of ``y`` on a full-column-rank ``X`` with HC3, or cluster-robust (CR1), covariance.

    HC3: ``(X'X)^-1 X' diag(u_i^2 / (1 - h_i)^2) X (X'X)^-1``, ``h_i`` the leverage of row i; a row
    with leverage 1 (fitted exactly, residual 0) contributes nothing. Clusters: ``c (X'X)^-1
    (sum_b s_b s_b') (X'X)^-1`` with ``s_b = X_b' u_b`` and ``c = B/(B-1) * (n-1)/(n-K)``.
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    n, k = X.shape
    Q, R = np.linalg.qr(X)
    coef = np.linalg.solve(R, Q.T @ y)
    inverse_r = np.linalg.inv(R)
    bread = inverse_r @ inverse_r.T  # (X'X)^-1
    residuals = y - X @ coef
    if clusters is None:
        leverage = np.sum(Q * Q, axis=1)
        exact = leverage > 1 - 1e-10
        scaled = np.where(exact, 0.0, residuals / np.where(exact, 1.0, 1 - leverage))
        scores = X * scaled[:, None]
        factor = 1.0
    else:
        index = {label: i for i, label in enumerate(dict.fromkeys(clusters))}
        scores = np.zeros((len(index), k))
        np.add.at(scores, [index[label] for label in clusters], X * residuals[:, None])
        factor = len(index) / (len(index) - 1) * (n - 1) / (n - k)
    cov = factor * bread @ (scores.T @ scores) @ bread
    return OLS(coef, (cov + cov.T) / 2, residuals, n - k)


def dependent_columns(X: np.ndarray, columns: Sequence[str]) -> list[str]:
    """The columns that are (numerically) linear combinations of the columns before them.

    Column j is one when the j-th diagonal entry of X's QR factor, the distance of column j from the
    span of the columns before it, is below ``1e-8`` times the column's norm.
    """
    R = np.linalg.qr(np.asarray(X, dtype=float), mode="r")
    norms = np.linalg.norm(X, axis=0)
    return [columns[j] for j in range(X.shape[1]) if abs(R[j, j]) <= 1e-8 * max(norms[j], 1e-300)]


# --------------------------------------------------------------------------------------- the fit
@dataclass(frozen=True, eq=False)
class EffectsFit:
    """A fitted pool: coefficients by column, their robust covariance, and predictions for any assignment.

    Attributes:
        columns: the design-matrix columns (:func:`assignment_matrix`).
        coef: OLS coefficients, one per column.
        cov: their robust covariance (``cov_type``).
        cov_type: ``"HC3"`` (no blocks) or ``"cluster"`` (cluster-robust by block).
        num_groups: layer groups.
        nobs: designs in the pool.
        df_resid: designs minus columns.
        blocks: the block labels in order of first appearance (the first is the reference); empty without blocks.
        residual_sd: ``sqrt(sum of squared residuals / df_resid)``.
        terms: ``"methods"`` or ``"subsets"`` (:func:`assignment_matrix`).
        levels: the subsets of ``terms="subsets"`` (the first is the reference), or one such tuple per group;
            empty for methods.
    """

    columns: tuple[str, ...]
    coef: np.ndarray
    cov: np.ndarray
    cov_type: str
    num_groups: int
    nobs: int
    df_resid: int
    blocks: tuple = ()
    residual_sd: float = float("nan")
    terms: str = METHODS
    levels: tuple = ()  # the subsets of terms="subsets", the first the reference (or one tuple per group)

    @property
    def se(self) -> np.ndarray:
        """Robust standard errors, one per column."""
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))

    def coefficient(self, column: str) -> tuple[float, float]:
        """``(estimate, standard error)`` of one column, e.g. ``fit.coefficient("G2:L")``."""
        if column not in self.columns:
            raise KeyError(f"no column {column!r}; the columns are {list(self.columns)}")
        j = self.columns.index(column)
        return float(self.coef[j]), float(self.se[j])

    def row(self, assignment: Sequence[str]) -> np.ndarray:
        """The design-matrix row an assignment is predicted at: its group terms, and the average block."""
        problems = _check_assignments([assignment], self.num_groups)
        if problems:
            raise ValueError("predict: " + "; ".join(p.replace("assignment 0", "the assignment") for p in problems))
        blocks = np.full(max(len(self.blocks) - 1, 0), 1.0 / len(self.blocks)) if self.blocks else np.zeros(0)
        return np.concatenate([[1.0], assignment_row(assignment, self.terms, self.levels), blocks])

    def predict(self, assignment: Sequence[str]) -> tuple[float, float]:
        """The predicted error of an assignment and its robust standard error.

        With blocks, the prediction is for an average block of the pool (the mean of the block
        effects, the reference block's being 0): block effects shift every assignment alike.
        """
        x = self.row(assignment)
        return float(x @ self.coef), float(np.sqrt(max(float(x @ self.cov @ x), 0.0)))

    def to_dict(self) -> dict:
        return {"columns": list(self.columns), "coef": self.coef.tolist(), "se": self.se.tolist(),
                "cov": self.cov.tolist(), "cov_type": self.cov_type, "num_groups": self.num_groups, "nobs": self.nobs,
                "df_resid": self.df_resid, "blocks": list(self.blocks), "residual_sd": self.residual_sd, "terms": self.terms,
                "levels": list(self.levels)}


def fill_pool_failures(errors, failed, blocks=None) -> np.ndarray:
    """Errors with every failed trial at the worst error of its block (with blocks) or of the pool (without).

    A block whose every trial failed takes the worst error of the pool (:func:`peftspace.analysis.racing.fill_failures`).

    Raises:
        ValueError: shapes that differ, or no trial that succeeded.
    """
    values = np.array(errors, dtype=float)
    failed = np.asarray(failed, dtype=bool)
    if values.ndim != 1 or failed.shape != values.shape:
        raise ValueError(f"errors (shape {values.shape}) and failed (shape {failed.shape}) must be 1-D and of the same length")
    if np.all(failed | ~np.isfinite(values)):
        raise ValueError("every trial of the pool failed: there is no error to fill failures with")
    problems, labels = _block_labels(blocks, values.size)
    if problems:
        raise ValueError("fill_pool_failures: " + "; ".join(problems))
    rows: dict = {}
    for i, label in enumerate(labels or [0] * values.size):  # no blocks: the pool is one row
        rows.setdefault(label, []).append(i)
    table = np.full((len(rows), max(map(len, rows.values()))), np.nan)  # blocks x members, padded with NaN
    mask = np.zeros(table.shape, dtype=bool)
    for r, members in enumerate(rows.values()):
        table[r, :len(members)], mask[r, :len(members)] = values[members], failed[members]
    filled, out = fill_failures(table, mask), values.copy()
    for r, members in enumerate(rows.values()):
        out[members] = filled[r, :len(members)]
    return out


def fit_effects(errors, assignments: Sequence[Sequence[str]], num_groups: int, blocks=None, *, terms: str = METHODS,
                levels=ALL_SUBSETS) -> EffectsFit:
    """Fit the additive effects model to a pool's errors (see the module doc).

    Args:
        errors: one finite error per design; failed trials already filled (:func:`fill_pool_failures`:
            the worst error of the pool, or of the block).
        assignments: one tuple of ``num_groups`` subsets per design.
        num_groups: layer groups.
        blocks: optional block label per design: adds block fixed effects and makes the standard
            errors cluster-robust by block (needs two or more blocks).
        terms: ``"methods"`` (method indicators and ``k>=2``) or ``"subsets"`` (a dummy per level).
        levels: the subsets of ``terms="subsets"``, the first the reference, or one such list per group.

    Returns:
        An :class:`EffectsFit`.

    Raises:
        ValueError: listing every problem at once: errors that are not 1-D, of the wrong length or not
            finite (NaN: fill failures first), malformed assignments or blocks, fewer designs than
            columns, or columns the pool does not identify (named).
    """
    values = np.asarray(errors, dtype=float)
    problems = []
    if values.ndim != 1:
        problems.append(f"errors must be a 1-D array with one error per design, got shape {values.shape}")
    else:
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            problems.append(f"errors holds {bad.size} NaN or infinite value(s) at positions {bad[:10].tolist()}: fill "
                            f"failed trials first (fill_pool_failures: the worst error of the pool or of the block)")
    more = _check_assignments(assignments, num_groups)
    problems += more + _check_terms(terms, levels, num_groups if isinstance(num_groups, int) else None)
    if not more and values.ndim == 1 and values.size != len(assignments):
        problems.append(f"errors has {values.size} values for {len(assignments)} assignments: give one error per design")
    labels = []
    if not more:
        block_problems, labels = _block_labels(blocks, len(assignments))
        problems += block_problems
        if not block_problems and blocks is not None and len(set(labels)) < 2:
            problems.append("blocks has a single block: cluster-robust errors need two or more blocks (or pass blocks=None)")
    if problems:
        raise ValueError("fit_effects: " + "; ".join(problems))
    X, columns = assignment_matrix(assignments, num_groups, labels or None, terms=terms, levels=levels)
    n, k = X.shape
    if n <= k:
        raise ValueError(f"fit_effects: {n} designs for {k} columns ({', '.join(columns[:3])}, ...): the fit needs more "
                         f"designs than columns; draw a larger pool (balanced_assignments)")
    dependent = dependent_columns(X, columns)
    if dependent:
        raise ValueError(f"fit_effects: the pool does not identify the column(s) {dependent}: each is a linear combination "
                         f"of the columns before it (a method never or always used in a group, too few subset sizes "
                         f"for the k>=2 term, or a block confounded with assignments); draw a balanced pool")
    fit = robust_ols(X, values, clusters=labels or None)
    residual_sd = float(np.sqrt(fit.residuals @ fit.residuals / fit.df_resid))
    return EffectsFit(tuple(columns), fit.coef, fit.cov, "cluster" if labels else "HC3", num_groups, n, fit.df_resid,
                      tuple(dict.fromkeys(labels)), residual_sd, terms, _canonical_levels(levels) if terms == SUBSETS else ())


def _canonical_levels(levels) -> tuple:
    if per_group(levels):
        return tuple(tuple(map(canonical, group)) for group in levels)
    return tuple(map(canonical, levels))


# ---------------------------------------------------------------------------------- the choice
def narrowed_subsets(fit: EffectsFit, candidates=ALL_SUBSETS, keep: int = 3) -> list[tuple[str, ...]]:
    """Per group, the ``keep`` candidate subsets with the lowest predicted contribution, best first (ties: the
    candidate listed first): the levels of a second, narrowed pool."""
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise ValueError(f"narrowed_subsets: keep={keep!r} must be a positive integer")
    lists = [tuple(dict.fromkeys(map(canonical, group_levels(candidates, g)))) for g in range(fit.num_groups)]
    return [tuple(group[i] for i in np.argsort(score, kind="stable")[:keep])
            for group, score in zip(lists, _group_scores(fit, lists))]


def _group_scores(fit: EffectsFit, lists) -> list[np.ndarray]:
    """Per group, the fitted contribution of each subset of ``lists[g]`` (its features times the group's coefficients)."""
    scores, start = [], 1  # after the intercept
    for g in range(fit.num_groups):
        width = len(group_columns(g, fit.terms, fit.levels))
        coef = fit.coef[start:start + width]
        start += width
        scores.append(np.array([group_features(s, fit.terms, group_levels(fit.levels, g)) @ coef for s in lists[g]]))
    return scores

def best_assignments(fit: EffectsFit, candidates=ALL_SUBSETS, top: int = 2) -> list[tuple[tuple[str, ...], float]]:
    """The ``top`` assignments (one candidate subset per group) with the lowest predicted error.

    ``candidates``: the subsets every group may take, or one list per group (e.g. a fit's per-group
    ``levels``). Exact: the prediction is a sum of per-group scores (block effects shift all alike), so a
    best-first search over each group's candidates sorted by score enumerates assignments in order of
    prediction. Ties go to the candidate listed first, group by group.

    Returns:
        ``[(assignment, predicted error), ...]``, best first; fewer than ``top`` when fewer exist.
    """
    lists = [group_levels(candidates, g) for g in range(fit.num_groups)] if candidates else []
    if per_group(candidates) and len(candidates) != fit.num_groups:
        lists = []
    problems = [p for g, group in enumerate(lists) for i, s in enumerate(group)
                if (p := _subset_problem(s, f"candidates[{i}]" if not per_group(candidates) else f"candidates[{g}][{i}]"))]
    if not lists or not all(lists):
        problems.append("candidates must be a non-empty list of subsets, or one such list per group")
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        problems.append(f"top={top!r} must be a positive integer")
    if problems:
        raise ValueError("best_assignments: " + "; ".join(dict.fromkeys(problems)))
    lists = [tuple(dict.fromkeys(map(canonical, group))) for group in lists]
    scores = []
    for score in _group_scores(fit, lists):
        order = np.argsort(score, kind="stable")
        scores.append((score[order], order))

    def entry(ranks):  # (predicted group sum, candidate numbers for ties, ranks)
        return (float(sum(s[r] for (s, _), r in zip(scores, ranks))), tuple(int(o[r]) for (_, o), r in zip(scores, ranks)), ranks)

    first = (0,) * fit.num_groups
    heap, seen, found = [entry(first)], {first}, []
    while heap and len(found) < top:
        _, numbers, ranks = heapq.heappop(heap)
        assignment = tuple(lists[g][i] for g, i in enumerate(numbers))
        found.append((assignment, fit.predict(assignment)[0]))
        for g in range(fit.num_groups):
            successor = ranks[:g] + (ranks[g] + 1,) + ranks[g + 1:]
            if ranks[g] + 1 < len(lists[g]) and successor not in seen:
                seen.add(successor)
                heapq.heappush(heap, entry(successor))
    return found
