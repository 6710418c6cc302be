"""Racing a stage's options on paired blocks, with the family-wise error rate of its decisions controlled.

A **block** is one draw of everything a stage does not compare (the other components of the design,
the trial seed, the data order), instantiated with every surviving option: the options of a block
share their context, so the paired difference of two options' errors in a block is free of it.

**The procedure.** Looks are planned at block counts ``n_1 < ... < n_T = max_blocks``. At look t,
for every pair of surviving options, the differences of their errors over the first ``n_t`` blocks
get a two-sided paired t-test; Holm's step-down over those pairs at level ``alpha_t = alpha / T``
(the level spent uniformly over the planned looks) rejects some; each rejected pair eliminates its
worse option (the higher mean error). Then the survivors are checked for **equivalence**: every
surviving pair's two one-sided tests (TOST) at level ``alpha_t`` reject ``|difference| >= delta``,
i.e. its ``1 - 2 alpha_t`` interval lies inside ``(-delta, delta)``. The race stops when one option
is left (``decided``), when the survivors are equivalent (``tie``), or after the last look
(``max_blocks``: the survivors are a confidence set for the best).

**What it controls.** The probability that *any* option is eliminated by an option that is not
truly better, over all pairs and all looks, is at most ``alpha`` (Holm within a look, a union bound
over looks): so the truly best option survives with probability at least ``1 - alpha``. A tie is
declared wrongly (some surviving pair differs by ``delta`` or more) with probability at most
``alpha`` too (intersection-union: a false tie needs that pair's TOST to reject, at ``alpha_t`` per
look). Assumptions: blocks are independent draws; within a block the options' errors may be
correlated in any way; the t-tests assume the mean of the paired differences is close to normal
(heavy tails make them conservative rather than liberal; ``benchmarks/discovery_sim.py`` measures
both rates by simulation, with failures and heavy tails).

**The winner.** One survivor: it. Several (a tie or the confidence set at ``max_blocks``): the
survivor with the lowest mean error over the blocks all survivors ran, ties broken by the order the
options were given in (the stage's default option first). The log says which rule chose it.

**Failures count.** A trial that failed or diverged takes the worst error of its block (the highest
any option reached on that draw), or the worst error of the whole stage when every trial of its
block failed: an option that fails often looks worse, never better (:func:`fill_failures`).

numpy and scipy only; no torch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

DECIDED, TIE, MAX_BLOCKS, RUNNING = "decided", "tie", "max_blocks", "running"


@dataclass(frozen=True)
class RacePlan:
    """When a race looks and how strictly it decides.

    Attributes:
        alpha: family-wise error rate of eliminations over all pairs and looks (and, separately, of ties).
        delta: the indifference zone, in error points: options closer than this are interchangeable.
        max_blocks: the most blocks a race draws; its last look is there.
        first_look: blocks before the first look.
        look_every: blocks between later looks.
    """

    alpha: float = 0.05
    delta: float = 1.0
    max_blocks: int = 20
    first_look: int = 5
    look_every: int = 5

    def __post_init__(self):
        problems = []
        if not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < 1:
            problems.append(f"alpha={self.alpha!r} must be in (0, 1)")
        if not isinstance(self.delta, (int, float)) or not self.delta >= 0 or not math.isfinite(self.delta):
            problems.append(f"delta={self.delta!r} must be a finite number >= 0 (error points)")
        for name in ("max_blocks", "first_look", "look_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (2 if name == "first_look" else 1):
                problems.append(f"{name}={value!r} must be an integer >= {2 if name == 'first_look' else 1}")
        if not problems and self.first_look > self.max_blocks:
            problems.append(f"first_look={self.first_look} must not exceed max_blocks={self.max_blocks}")
        if problems:
            raise ValueError("race plan: " + "; ".join(problems))

    @property
    def looks(self) -> tuple[int, ...]:
        """The block counts at which the race looks; the last is ``max_blocks``."""
        counts = list(range(self.first_look, self.max_blocks + 1, self.look_every))
        if counts[-1] != self.max_blocks:
            counts.append(self.max_blocks)
        return tuple(counts)

    @property
    def alpha_per_look(self) -> float:
        return self.alpha / len(self.looks)

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "delta": self.delta, "max_blocks": self.max_blocks, "first_look": self.first_look,
                "look_every": self.look_every}

    @classmethod
    def from_dict(cls, data: dict) -> "RacePlan":
        return cls(**data)


@dataclass(frozen=True)
class PairTest:
    """The paired comparison of options ``a`` and ``b`` at one look: ``difference`` is mean(error a - error b)."""

    a: str
    b: str
    n: int
    difference: float
    interval: tuple[float, float]  # two-sided, at 1 - alpha_t (the look's level)
    p_value: float
    rejected: bool  # by Holm at the look's level: the worse of the two is eliminated
    equivalent: bool  # TOST at the look's level: |difference| < delta

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "n": self.n, "difference": self.difference, "interval": list(self.interval),
                "p_value": self.p_value, "rejected": self.rejected, "equivalent": self.equivalent}


@dataclass(frozen=True)
class Look:
    """One look: its block count, level, the pair tests among the options alive before it, and who went out."""

    number: int
    blocks: int
    alpha: float
    alive: tuple[str, ...]
    pairs: tuple[PairTest, ...]
    eliminated: dict[str, str]  # option -> the option that beat it
    survivors: tuple[str, ...]
    tie: bool

    def to_dict(self) -> dict:
        return {"number": self.number, "blocks": self.blocks, "alpha": self.alpha, "alive": list(self.alive),
                "pairs": [p.to_dict() for p in self.pairs], "eliminated": dict(self.eliminated),
                "survivors": list(self.survivors), "tie": self.tie}


@dataclass(frozen=True)
class RaceResult:
    """Where a race stands: its looks so far, survivors, status, and the winner once it has stopped."""

    options: tuple[str, ...]
    plan: RacePlan
    looks: tuple[Look, ...]
    survivors: tuple[str, ...]
    status: str  # running | decided | tie | max_blocks
    winner: str | None
    winner_rule: str | None
    means: dict[str, float] = field(default_factory=dict)  # over the blocks every survivor ran
    blocks_needed: int | None = None  # for the next look (running), else None

    @property
    def done(self) -> bool:
        return self.status != RUNNING

    def to_dict(self) -> dict:
        return {"options": list(self.options), "plan": self.plan.to_dict(), "looks": [look.to_dict() for look in self.looks],
                "survivors": list(self.survivors), "status": self.status, "winner": self.winner,
                "winner_rule": self.winner_rule, "means": dict(self.means), "blocks_needed": self.blocks_needed}


def holm(p_values: Sequence[float], alpha: float) -> np.ndarray:
    """Holm's step-down: which hypotheses are rejected at family-wise level ``alpha`` (a boolean array).

    Sorted ascending, ``p_(k)`` is rejected while ``p_(j) <= alpha / (m - j + 1)`` for every ``j <= k``.
    """
    p = np.asarray(p_values, dtype=float)
    rejected = np.zeros(p.size, dtype=bool)
    for rank, index in enumerate(np.argsort(p, kind="stable")):
        if not p[index] <= alpha / (p.size - rank):
            break
        rejected[index] = True
    return rejected


def paired_test(differences: Sequence[float], alpha: float, delta: float) -> tuple[float, tuple[float, float], float, bool]:
    """Mean, ``1 - alpha`` interval, two-sided paired t-test p-value and TOST equivalence of paired differences.

    Equivalence: both one-sided tests of ``mean <= -delta`` and ``mean >= delta`` reject at ``alpha``,
    which is the ``1 - 2 alpha`` interval inside ``(-delta, delta)``. Differences without spread
    (``n < 2`` or all equal) are taken at face value: p is 1 when their mean is 0 and 0 otherwise.
    """
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    n, mean = d.size, float(d.mean())
    spread = float(d.std(ddof=1)) if n > 1 else 0.0
    if n < 2 or spread <= 1e-12 * max(1.0, abs(mean)):
        p = 1.0 if abs(mean) <= 1e-12 else 0.0
        return mean, (mean, mean), p, abs(mean) < delta and n >= 2
    se = spread / math.sqrt(n)
    t = mean / se
    p = float(2 * stats.t.sf(abs(t), n - 1))
    half = _t_quantile(1 - alpha / 2, n - 1) * se
    tost_half = _t_quantile(1 - alpha, n - 1) * se
    equivalent = mean - tost_half > -delta and mean + tost_half < delta
    return mean, (mean - half, mean + half), p, equivalent


@functools.lru_cache(maxsize=4096)
def _t_quantile(q: float, df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(q, df))


def fill_failures(errors, failed) -> np.ndarray:
    """Errors with every failed trial set to the worst error of its block (or of the stage, if its block has none).

    Args:
        errors: blocks x options; NaN where the option did not run (or has not finished).
        failed: same shape, True where the trial failed or diverged (its error, if any, is ignored).
    """
    values = np.array(errors, dtype=float)
    failed = np.asarray(failed, dtype=bool)
    values[failed] = np.nan
    finite = np.isfinite(values)
    stage_worst = float(np.max(values[finite])) if finite.any() else 100.0
    for row in range(values.shape[0]):
        if failed[row].any():
            ran = finite[row]
            values[row, failed[row]] = float(np.max(values[row, ran])) if ran.any() else stage_worst
    return values


def look_at(errors: np.ndarray, options: Sequence[str], alive: Sequence[str], blocks: int, alpha: float, delta: float,
            number: int) -> Look:
    """One look at the first ``blocks`` rows of ``errors`` (failures already filled) among the ``alive`` options."""
    column = {option: i for i, option in enumerate(options)}
    rows = errors[:blocks]
    pairs, p_values = [], []
    names = [o for o in options if o in alive]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = np.isfinite(rows[:, column[a]]) & np.isfinite(rows[:, column[b]])
            d = rows[both, column[a]] - rows[both, column[b]]
            pairs.append((a, b, d.size, paired_test(d, alpha, delta) if d.size else (0.0, (0.0, 0.0), 1.0, False)))
    rejected = holm([test[2] for *_, test in pairs], alpha) if pairs else np.zeros(0, dtype=bool)
    tests, eliminated = [], {}
    for (a, b, n, (mean, interval, p, equivalent)), reject in zip(pairs, rejected):
        tests.append(PairTest(a, b, int(n), mean, interval, p, bool(reject), bool(equivalent)))
        if reject:
            loser, winner = (a, b) if mean > 0 else (b, a)
            eliminated.setdefault(loser, winner)
    survivors = tuple(o for o in names if o not in eliminated)
    # equivalence among the survivors: every surviving pair (intersection-union, no multiplicity correction needed)
    left = [t for t in tests if t.a in survivors and t.b in survivors]
    tie = len(survivors) > 1 and all(t.equivalent for t in left)
    return Look(number, blocks, alpha, tuple(names), tuple(tests), eliminated, survivors, tie)


def replay(errors, options: Sequence[str], plan: RacePlan, failed=None) -> RaceResult:
    """The race's state from the errors observed so far: every look whose blocks have all finished, made in order.

    Deterministic: look t reads exactly the first ``n_t`` blocks, so a race resumed from a store, or
    fed by workers finishing in any order, makes the same decisions.

    Args:
        errors: blocks x options (any number of rows); NaN where a trial has not finished or did not run.
        options: the column names, in the order that breaks ties (default option first).
        plan: the race plan.
        failed: blocks x options booleans, True for failed trials (filled by :func:`fill_failures`).
    """
    options = tuple(options)
    raw = np.asarray(errors, dtype=float).reshape(-1, len(options))
    failed = np.zeros(raw.shape, dtype=bool) if failed is None else np.asarray(failed, dtype=bool).reshape(raw.shape)
    # Trials an option ran after it was eliminated (workers may run ahead of the looks) are not read.
    ran = np.zeros(raw.shape, dtype=bool)
    alive, looks, before, values = options, [], 0, np.zeros((0, len(options)))
    alpha = plan.alpha_per_look
    for number, blocks in enumerate(plan.looks, start=1):
        column = [options.index(o) for o in alive]
        ran[before:blocks, column] = True
        finished = (np.isfinite(raw) | failed)[:blocks]
        if raw.shape[0] < blocks or not finished[before:blocks][:, column].all():
            return _result(options, plan, looks, alive, values, RUNNING, blocks)
        # Only these blocks fill failures, so later blocks never change an earlier look.
        values = fill_failures(np.where(ran[:blocks], raw[:blocks], np.nan), failed[:blocks] & ran[:blocks])
        look = look_at(values, options, alive, blocks, alpha, plan.delta, number)
        looks.append(look)
        alive, before = look.survivors, blocks
        if len(alive) == 1:
            return _result(options, plan, looks, alive, values, DECIDED)
        if look.tie:
            return _result(options, plan, looks, alive, values, TIE)
    return _result(options, plan, looks, alive, values, MAX_BLOCKS)


def _result(options, plan, looks, alive, values, status, blocks_needed=None) -> RaceResult:
    column = [options.index(o) for o in alive]
    upto = looks[-1].blocks if looks else 0
    rows = values[:upto][:, column] if upto else np.zeros((0, len(column)))
    common = np.isfinite(rows).all(axis=1)
    means = {o: float(rows[common, i].mean()) for i, o in enumerate(alive)} if common.any() else {}
    winner = rule = None
    if status == DECIDED:
        winner, rule = alive[0], "the only option left"
    elif status in (TIE, MAX_BLOCKS):
        winner = min(alive, key=lambda o: (means.get(o, math.inf), options.index(o)))
        kind = "tie set" if status == TIE else "confidence set at max_blocks"
        rule = f"lowest mean error in the {kind} (ties: the option listed first)"
    return RaceResult(options, plan, tuple(looks), tuple(alive), status, winner, rule, means,
                      blocks_needed if status == RUNNING else None)


def race(options: Sequence[str], draw_block: Callable[[int, tuple[str, ...]], dict], plan: RacePlan = RacePlan()) -> RaceResult:
    """Run a race to its end, drawing blocks as needed: ``draw_block(block_index, alive)`` returns
    ``{option: error}`` for the alive options (``None`` or NaN for a failed trial).

    The synchronous driver, for simulations; ``peftspace discover`` queues blocks in a store and
    :func:`replay` s them instead.
    """
    options = tuple(options)
    errors = np.full((plan.max_blocks, len(options)), np.nan)
    failed = np.zeros(errors.shape, dtype=bool)
    drawn = 0
    while True:
        state = replay(errors[:drawn], options, plan, failed[:drawn])
        if state.done:
            return state
        while drawn < state.blocks_needed:
            for option, error in draw_block(drawn, state.survivors).items():
                column = options.index(option)
                if error is None or not math.isfinite(error):
                    failed[drawn, column] = True
                else:
                    errors[drawn, column] = error
            drawn += 1


def trials_used(result: RaceResult) -> int:
    """How many trials a race ran: each look's alive options over the blocks since the previous look."""
    used, before = 0, 0
    for look in result.looks:
        used += len(look.alive) * (look.blocks - before)
        before = look.blocks
    return used
