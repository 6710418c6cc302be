"""The best finished designs of a set of sweeps, and their per-layer plans on the sweeps' model."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from peftspace.design.errors import PeftspaceError
from peftspace.report.collect import SweepData


@dataclass(frozen=True)
class BestDesign:
    """A finished design ranked by error: its sweep, its trial row, and its plan or why there is none."""

    rank: int
    study: str
    row: dict
    plan: object | None  # peftspace.Plan
    note: str | None = None


RANKED_BY = ("error", "validation_error")


def best_rows(sweeps: Iterable[SweepData], k: int, by: str = "error") -> list[tuple[str, dict]]:
    """The ``k`` finished trials of lowest ``by`` over ``sweeps``, as ``(study, row)``; ties by study, then trial.

    ``by``: ``"error"`` (the test error, the sweeps' objective) or ``"validation_error"`` (what a racing
    discovery chooses by; trials without one come last).
    """
    if by not in RANKED_BY:
        raise ValueError(f"by={by!r} must be one of {list(RANKED_BY)}")
    rows = [(sweep.study, row) for sweep in sweeps for row in sweep.trials]
    return sorted(rows, key=lambda item: (_value(item[1], by), item[0], item[1]["trial"]))[:max(0, k)]


def _value(row: dict, by: str) -> float:
    value = row.get(by)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.inf


def best_designs(sweeps: Iterable[SweepData], model: str, k: int = 5, *, by: str = "error") -> list[BestDesign]:
    """The ``k`` best designs over ``sweeps`` by ``by`` with their plans on ``model``'s config (see :class:`Planner`)."""
    rows = best_rows(sweeps, k, by)
    planner = Planner(model) if rows else None
    return [BestDesign(rank, study, row, *planner.plan(row.get("design"))) for rank, (study, row) in enumerate(rows, start=1)]


class Planner:
    """Plans designs on one model's config, loaded once: ``peftspace.plan(config, Design.from_dict(design))``.

    When the config cannot be loaded (a hub id offline, a path that is gone) or a design cannot be
    planned, :meth:`plan` gives no plan and a note saying why; the report then shows the stored design.
    """

    def __init__(self, model: str):
        from peftspace.models import load_config

        self.model, self.config, self.note = model, None, None
        try:
            self.config = load_config(model)
        except (PeftspaceError, OSError) as error:
            self.note = f"the config of model {model!r} could not be loaded, so the plan is not shown ({_first_line(error)})"

    def plan(self, design: dict | None) -> tuple[object | None, str | None]:
        from peftspace.api import plan
        from peftspace.design import Design

        if self.config is None:
            return None, self.note
        if not isinstance(design, dict):
            return None, "the trial holds no design"
        try:
            return plan(self.config, Design.from_dict(design)), None
        except PeftspaceError as error:
            return None, f"this design cannot be planned on {self.model!r}: {_first_line(error)}"


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
