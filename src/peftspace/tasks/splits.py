"""Seeded, disjoint splits: carve a held-out part from a list of examples.

Randomness is an argument: the caller's seed goes into ``numpy.random.default_rng``; no global
state is touched. Both parts keep the original file order.
"""

from __future__ import annotations

import numbers

import numpy as np

from peftspace.tasks.spec import TaskError


def holdout_count(size: int | float, n: int, cap: int | None = None, what: str = "validation_size") -> int:
    """How many of ``n`` examples to hold out.

    ``size`` is a fraction in [0, 1) (rounded, at least 1 when positive) or a count. The result is
    capped at ``cap`` and always leaves at least one example for training. A count that would leave
    none is an error; a fraction is clipped instead.
    """
    if isinstance(size, bool) or not isinstance(size, numbers.Real):
        raise TaskError(f"{what}={size!r} must be a fraction in [0, 1) or a whole number of examples")
    if isinstance(size, numbers.Integral):
        if size < 0:
            raise TaskError(f"{what}={size} must not be negative")
        if size >= n and size > 0:
            raise TaskError(f"{what}={size} leaves no training examples: the training pool has only {n}; "
                            "ask for fewer, or give a fraction such as 0.1")
        count = int(size)
    else:
        if not 0.0 <= size < 1.0:
            raise TaskError(f"{what}={size} must be a fraction in [0, 1) or a whole number of examples")
        count = max(1, round(size * n)) if size > 0 else 0
    if cap is not None:
        if cap < 0:
            raise TaskError(f"max_validation={cap} must not be negative")
        count = min(count, cap)
    return max(0, min(count, n - 1))


def carve(examples: list, count: int, seed: int, keys: list | None = None) -> tuple[list, list]:
    """Split ``examples`` into (rest, held_out), holding out ``count`` units chosen by ``default_rng(seed)``.

    A unit is one example, or, with ``keys``, every example sharing a key (a MultiRC question stays whole).
    """
    keys = list(range(len(examples))) if keys is None else keys
    units = list(dict.fromkeys(keys))
    held_units = {units[i] for i in np.random.default_rng(seed).permutation(len(units))[:count]} if count else set()
    held = [k in held_units for k in keys]
    return [e for e, h in zip(examples, held) if not h], [e for e, h in zip(examples, held) if h]


def carve_validation(train: list, seed: int, validation_size: int | float, max_validation: int | None) -> tuple[list, list, str]:
    """(train, validation, note) with the validation part carved from ``train``.

    Examples with a ``group`` (MultiRC answer options) are carved by group, so that a question is
    never split between train and validation; sizes then count groups.
    """
    grouped = any(getattr(e, "group", None) is not None for e in train)
    keys = [e.group if e.group is not None else ("", i) for i, e in enumerate(train)] if grouped else None
    units = len(set(keys)) if grouped else len(train)
    rest, validation = carve(train, holdout_count(validation_size, units, max_validation), seed, keys)
    unit = f" ({len({e.group for e in validation})} groups of the {units})" if grouped else ""
    note = (f"validation: {len(validation)} examples{unit} carved from the {len(train)} training examples "
            f"(numpy default_rng(seed={seed}); validation_size={validation_size!r}, max_validation={max_validation})")
    return rest, validation, note
