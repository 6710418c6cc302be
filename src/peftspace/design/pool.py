"""One pool of strategy assignments, drawn balanced, for fitting "method m in group g" effects.

Instead of one subspace per group and subset (the paper's greedy 4 groups x 15 subsets), a single
pool of designs is trained whose per-group subsets are **balanced**: in every group each allowed
subset appears ``floor(n / len(subsets))`` or ``ceil(n / len(subsets))`` times. The groups are
shuffled independently, so a group's subset says (almost) nothing about another group's, and the
method indicators of different groups are nearly orthogonal: each group's effects are estimated
as if the others were noise averaged over the pool. ``peftspace.analysis.effects`` fits them.

No torch, no scipy: numpy only.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from peftspace.design.errors import DesignError
from peftspace.design.space import ALL_SUBSETS

_REPAIR_SWEEPS = 200  # random swap passes tried before the structured fallback


def balanced_assignments(num_groups: int, n: int, rng: np.random.Generator,
                         subsets: tuple[str, ...] = ALL_SUBSETS) -> list[tuple[str, ...]]:
    """``n`` strategy assignments (one subset per group), balanced in every group.

    Every group's column is the allowed subsets repeated ``n // len(subsets)`` times plus
    ``n % len(subsets)`` distinct ones drawn at random, shuffled on its own. Duplicate assignments
    are then removed by swapping entries within a column (which keeps every column balanced), so
    that the ``n`` assignments are distinct whenever ``n <= len(subsets) ** num_groups``. Where the
    random repair cannot finish (a pool close to the whole product), a structured arrangement
    takes over: row ``i`` (``i`` in base ``len(subsets)`` with digits ``d_0, d_1, ...``) takes in
    group g the subset number ``(d_0 + ... + d_g) mod len(subsets)``, relabelled by a random
    permutation per group and with its rows shuffled; it is balanced and distinct by construction,
    and above ``len(subsets) ** num_groups`` designs it repeats every assignment
    ``floor`` or ``ceil`` of ``n / len(subsets) ** num_groups`` times.

    Args:
        num_groups: layer groups (4 in the paper).
        n: designs in the pool.
        rng: the only source of randomness; the same seed gives the same pool.
        subsets: the allowed subsets (letters from A, P, B, L, in canonical order), the same for every group,
            or one list per group, all equally long (a second pool narrowed to each group's best few).

    Returns:
        A list of ``n`` tuples of ``num_groups`` subset strings.

    Raises:
        DesignError: listing every bad argument at once.
    """
    problems = []
    if not isinstance(num_groups, int) or isinstance(num_groups, bool) or num_groups < 1:
        problems.append(f"num_groups={num_groups!r} must be a positive integer")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        problems.append(f"n={n!r} must be a positive integer (the number of designs in the pool)")
    if not isinstance(rng, np.random.Generator):
        problems.append(f"rng must be a numpy.random.Generator (numpy.random.default_rng(seed)), got {type(rng).__name__}")
    per_group = isinstance(subsets, (tuple, list)) and bool(subsets) and all(isinstance(s, (tuple, list)) for s in subsets)
    lists = [tuple(s) for s in subsets] if per_group else None
    if per_group and isinstance(num_groups, int) and len(lists) != num_groups:
        problems.append(f"subsets gives {len(lists)} groups' subsets for num_groups={num_groups}")
    elif per_group and len({len(s) for s in lists}) != 1:
        problems.append(f"subsets gives groups different numbers of subsets {[len(s) for s in lists]}: per-group "
                        f"subsets must be equally many")
    allowed = tuple(subsets) if isinstance(subsets, (tuple, list)) and not per_group else None
    for where, group in ([(f"subsets[{g}]", s) for g, s in enumerate(lists)] if per_group else [("subsets", allowed)]):
        if not group:
            problems.append(f"{where}={subsets!r:.80} must be a non-empty list of strategy subsets such as ('A', 'AL')")
            continue
        bad = [s for s in group if s not in ALL_SUBSETS]
        if bad:
            problems.append(f"{where} {bad} are not strategy subsets: use letters from A, P, B, L in that order, "
                            f"without repeats (one of {list(ALL_SUBSETS)})")
        repeated = sorted(s for s, count in Counter(group).items() if count > 1)
        if repeated:
            problems.append(f"{where} {repeated} are listed more than once: a balanced pool needs each subset once")
    if problems:
        raise DesignError([f"balanced_assignments: {p}" for p in problems])
    if not per_group:
        lists = [allowed] * num_groups
    size = len(lists[0])
    columns = np.stack([_balanced_column(n, size, rng) for _ in range(num_groups)], axis=1)
    if n <= size ** num_groups and not _repair(columns, size, rng):
        columns = _structured(num_groups, n, size, rng)
    elif n > size ** num_groups:
        columns = _structured(num_groups, n, size, rng)
    return [tuple(lists[g][i] for g, i in enumerate(row)) for row in columns.tolist()]


def _balanced_column(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    extra = rng.choice(size, n % size, replace=False)
    column = np.concatenate([np.tile(np.arange(size), n // size), extra])
    return rng.permutation(column)


def _repair(columns: np.ndarray, size: int, rng: np.random.Generator) -> bool:
    """Swap entries within columns until no row repeats another; False if it does not get there."""
    n, groups = columns.shape
    counts = Counter(map(tuple, columns.tolist()))
    for _ in range(_REPAIR_SWEEPS):
        duplicates = [i for i in range(n) if counts[tuple(columns[i])] > 1]
        if not duplicates:
            return True
        for i in duplicates:
            if counts[tuple(columns[i])] == 1:
                continue  # fixed by an earlier swap
            j, g = int(rng.integers(n)), int(rng.integers(groups))
            if j == i or columns[i, g] == columns[j, g]:
                continue
            old_i, old_j = tuple(columns[i]), tuple(columns[j])
            columns[i, g], columns[j, g] = columns[j, g], columns[i, g]
            new_i, new_j = tuple(columns[i]), tuple(columns[j])
            if counts[new_i] == 0 and counts[new_j] == 0:  # both rows new: i leaves its duplicate, j stays unique
                counts[old_i] -= 1
                counts[old_j] -= 1
                counts[new_i] += 1
                counts[new_j] += 1
            else:  # the swap would make a new duplicate: undo it
                columns[i, g], columns[j, g] = columns[j, g], columns[i, g]
    return all(count == 1 for count in counts.values() if count)


def _structured(num_groups: int, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    index = np.arange(n) % size ** num_groups
    digits = np.stack([(index // size ** g) % size for g in range(num_groups)], axis=1)
    columns = np.cumsum(digits, axis=1) % size  # triangular, so distinct digit rows stay distinct
    labels = np.stack([rng.permutation(size) for _ in range(num_groups)], axis=1)  # per-group relabelling
    columns = labels[columns, np.arange(num_groups)]
    return columns[rng.permutation(n)]
