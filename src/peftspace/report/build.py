"""``write_report``: read a store, draw its EDFs, and write ``index.html`` with the PNGs beside it.

The statistics come from :mod:`peftspace.analysis` (``edf``, ``normalized_edf``; the rankings are
the ones the discovery recorded); :mod:`peftspace.report.plots` only draws them and
:mod:`peftspace.report.page` only lays them out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from peftspace.analysis import as_errors, edf, normalized_edf
from peftspace.report.best import BestDesign, Planner, best_designs
from peftspace.report.collect import DiscoveryData, SweepData, collect
from peftspace.report.plots import Curve, draw_steps
from peftspace.sweep.store import SweepError

NORMALIZED_BINS = 8  # log-spaced trainable-parameter bins of a complexity-normalized EDF
EDF_Y = "cumulative fraction of designs"
ERROR_X = "error (100 - mean task score)"
VALIDATION_X = "validation error (100 - mean validation score)"


@dataclass(frozen=True)
class PlotRecord:
    """One PNG of the report and what it shows: ``curves`` maps a key (option name, or the sweep's
    study) to the ``(x, y)`` points drawn, ``labels`` to its legend entry; ``edges`` are the shared
    bins of a normalized EDF."""

    file: str  # relative to the report folder
    kind: str  # "edf" | "normalized-edf"
    owner: str  # the discovery or sweep
    stage: str | None
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    labels: dict[str, str]
    edges: np.ndarray | None = None


@dataclass(frozen=True)
class RaceData:
    """What a racing stage shows beyond its log entry: its study, the designs that serve each raced option, its pool."""

    study: SweepData | None  # with its outcomes; None while the stage study does not exist (or is not logged yet)
    served: dict[str, list[dict]]  # raced option -> its complete designs (outcome rows) with a validation error
    pool: SweepData | None = None  # the strategy stage's pool study


@dataclass(frozen=True)
class StageView:
    stage: dict
    edf: PlotRecord | None
    normalized: PlotRecord | None
    normalized_note: str | None
    race: RaceData | None = None  # racing stages only


@dataclass(frozen=True)
class DiscoveryView:
    data: DiscoveryData
    stages: tuple[StageView, ...]
    best: tuple[BestDesign, ...]
    final_plan: tuple[object | None, str | None] = (None, None)  # the discovered design's plan, or why none
    ranked_by: str = "error"  # the best designs' order: "error" (test) or "validation_error" (racing)


@dataclass(frozen=True)
class SweepView:
    data: SweepData
    edf: PlotRecord | None
    best: tuple[BestDesign, ...]


@dataclass(frozen=True)
class Report:
    """A written report: ``index`` (the HTML page) and every plot it links, with the curves drawn."""

    index: Path
    plots: tuple[PlotRecord, ...]
    discoveries: tuple[DiscoveryView, ...] = field(default=(), repr=False)
    sweeps: tuple[SweepView, ...] = field(default=(), repr=False)


def write_report(storage: str, out_dir, *, studies: list[str] | None = None, top: int = 5) -> Path:
    """Write an HTML report of a store's discoveries and sweeps; returns the path of ``index.html``.

    Args:
        storage: an Optuna storage URL (``sqlite:///path.db``, ``postgresql://...``) or the path of a
            ``.db`` file.
        out_dir: the report folder (created if missing): ``index.html`` and its PNGs, linked
            relatively, so the folder can be moved or served as it is. Nothing is written elsewhere.
        studies: the discoveries and sweeps to report (default: all; a discovery brings its stages'
            sweeps, which are then not reported again on their own).
        top: how many best designs to show per discovery or sweep.

    Raises:
        SweepError: a store that does not exist or holds no sweeps, an unknown study, or an ``out_dir``
            that is a file.
    """
    return build_report(storage, out_dir, studies=studies, top=top).index


def build_report(storage: str, out_dir, *, studies: list[str] | None = None, top: int = 5) -> Report:
    """:func:`write_report`, returning the :class:`Report` record (the plots and the curves they drew)."""
    from peftspace.report.page import render_page

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SweepError(f"the report folder {str(out)!r} exists and is not a folder; choose another --out")
    data = collect(storage, studies)
    out.mkdir(parents=True, exist_ok=True)
    plots = _Plots(out)
    discoveries = tuple(_discovery(plots, d, top) for d in data.discoveries)
    sweeps = tuple(_sweep(plots, s, top) for s in data.sweeps)
    index = out / "index.html"
    index.write_text(render_page(data.url, discoveries, sweeps), encoding="utf-8")
    return Report(index, tuple(plots.records), discoveries, sweeps)


def shared_log_edges(counts, bins: int = NORMALIZED_BINS) -> np.ndarray:
    """``bins + 1`` edges equally spaced in log10 from the smallest to the largest count (exact ends).

    The same construction as ``normalized_edf(..., bins=int)``, over the union of a stage's counts,
    so that every option of the stage is reweighted over the same bins.

    Raises:
        ValueError: a non-positive count, or counts that are all equal (nothing to normalize).
    """
    values = as_errors(counts, "trainable parameter counts")
    low, high = float(values.min()), float(values.max())
    if low <= 0 or low == high:
        raise ValueError(f"counts must be positive and not all equal, got the range [{low:g}, {high:g}]")
    edges = 10.0 ** np.linspace(np.log10(low), np.log10(high), int(bins) + 1)
    edges[0], edges[-1] = low, high
    return edges


class _Plots:
    """Numbers the PNG files of one report folder and keeps the record of each."""

    def __init__(self, folder: Path):
        self.folder, self.records = folder, []

    def draw(self, kind: str, owner: str, stage: str | None, curves: dict[str, Curve], title: str, edges=None, *,
             xlabel: str = ERROR_X) -> PlotRecord:
        name = f"{len(self.records) + 1:02d}-{_slug(owner)}{'-' + _slug(stage) if stage else ''}-{kind}.png"
        ylabel = EDF_Y if edges is None else "fraction of designs, reweighted"
        drawn = draw_steps(self.folder / name, curves, title=title, xlabel=xlabel, ylabel=ylabel)
        record = PlotRecord(name, kind, owner, stage, {k: (x, y) for k, (x, y, _) in drawn.items()},
                            {k: label for k, (_, _, label) in drawn.items()}, edges)
        self.records.append(record)
        return record


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-.")[:60] or "x"


def _discovery(plots: _Plots, data: DiscoveryData, top: int) -> DiscoveryView:
    stages = tuple(_stage(plots, data, stage) for stage in data.record.get("stages") or ())
    model = data.record.get("model") or next((s.definition.get("model") for s in data.sweeps.values()), "")
    final = data.record.get("final_design")
    final_plan = Planner(model).plan(final) if isinstance(final, dict) else (None, None)
    by = "validation_error" if data.record.get("protocol") == "racing" else "error"  # racing chooses by validation error
    ranked = [s for name, s in data.sweeps.items() if name != data.check_study()]  # the check trains on a longer schedule
    return DiscoveryView(data, stages, tuple(best_designs(ranked, model, top, by=by)), final_plan, by)


def _stage(plots: _Plots, data: DiscoveryData, stage: dict) -> StageView:
    """The EDF of every option with finished designs, and their normalized EDFs over shared bins."""
    if stage.get("protocol") == "racing":
        return _racing_stage(plots, data, stage)
    label = str(stage.get("stage", "?"))
    sweeps = {}
    for option, entry in (stage.get("options") or {}).items():
        sweep = data.sweeps.get(entry.get("study"))
        if sweep is not None and sweep.trials:
            sweeps[option] = sweep
    if not sweeps:
        return StageView(stage, None, None, None)
    winner = stage.get("winner")
    values = {option: (sweep.errors, [row.get("trainable") for row in sweep.trials]) for option, sweep in sweeps.items()}
    labels = {option: _label(option, len(sweep.trials), winner) for option, sweep in sweeps.items()}
    return StageView(stage, *_curves(plots, data.name, stage, values, labels, "errors", ERROR_X))


def _racing_stage(plots: _Plots, data: DiscoveryData, stage: dict) -> StageView:
    """A racing stage: the EDF of each raced option's validation errors (what the race decided on), over the
    complete designs of the stage study that serve the option (a design two options share counts for both)."""
    study = data.sweeps.get(stage.get("study"))
    raced = list(stage.get("raced") or stage.get("options") or ())
    served = {option: raced_rows(study.outcomes if study else (), option) for option in raced}
    race = RaceData(study, served, data.sweeps.get((stage.get("pool") or {}).get("study")))
    values = {option: ([r["validation_error"] for r in rows], [r.get("trainable") for r in rows])
              for option, rows in served.items() if rows}
    if not values:
        return StageView(stage, None, None, None, race)
    aliases = stage.get("aliases") or {}
    labels = {option: _label(option, len(values[option][0]), stage.get("winner"),
                             [a for a, r in aliases.items() if r == option]) for option in values}
    return StageView(stage, *_curves(plots, data.name, stage, values, labels, "validation errors", VALIDATION_X), race)


def raced_rows(outcomes, option: str) -> list[dict]:
    """The complete designs of a racing stage's study that serve ``option`` and have a validation error."""
    return [r for r in outcomes if r.get("state") == "complete" and option in (r.get("options") or ())
            and isinstance(r.get("validation_error"), (int, float)) and math.isfinite(r["validation_error"])]


def _curves(plots: _Plots, owner: str, stage: dict, values: dict[str, tuple[list, list]], labels: dict[str, str],
            what: str, xlabel: str):
    """``(edf plot, normalized plot, why no normalized plot)`` of ``option -> (errors, trainable counts)``."""
    label = str(stage.get("stage", "?"))
    title = f"{owner}: {label} {stage.get('title') or stage.get('component') or ''}".strip()
    winner = stage.get("winner")
    curves = {}
    for option, (errors, _) in values.items():
        x, y = edf(errors)
        curves[option] = Curve(x, y, labels[option], option == winner)
    edf_plot = plots.draw("edf", owner, label, curves, f"{title}: EDF of {what}", xlabel=xlabel)
    normalized, note = _normalized(plots, owner, label, title, values, labels, winner, what, xlabel)
    return edf_plot, normalized, note


def _normalized(plots: _Plots, owner: str, stage: str, title: str, values: dict[str, tuple[list, list]], labels, winner,
                what: str, xlabel: str):
    counts = {option: counts for option, (_, counts) in values.items()}
    flat = [c for values in counts.values() for c in values]
    if any(not isinstance(c, (int, float)) or not c > 0 for c in flat):
        return None, "no complexity-normalized EDF: some finished designs have no positive trainable-parameter count"
    if len(set(flat)) < 2:
        return None, f"no complexity-normalized EDF: every design trains the same number of parameters ({flat[0]:,})"
    edges = shared_log_edges(flat)
    curves = {}
    for option, (errors, _) in values.items():
        result = normalized_edf(errors, counts[option], bins=edges)
        curves[option] = Curve(result.x, result.F, labels[option], option == winner)
    of = "" if what == "errors" else f" of {what}"
    record = plots.draw("normalized-edf", owner, stage, curves,
                        f"{title}: complexity-normalized EDF{of} ({len(edges) - 1} log bins of trainable parameters, shared)",
                        edges, xlabel=xlabel)
    return record, None


def _label(option: str, n: int, winner, aliases=()) -> str:
    same = f" (= {', '.join(aliases)})" if aliases else ""
    return f"{option}{same} (n={n}{', winner' if option == winner else ''})"


def _sweep(plots: _Plots, data: SweepData, top: int) -> SweepView:
    record = None
    if data.trials:
        x, y = edf(data.errors)
        curves = {data.study: Curve(x, y, f"{data.study} (n={len(data.trials)})")}
        record = plots.draw("edf", data.study, None, curves, f"{data.study}: EDF of errors")
    return SweepView(data, record, tuple(best_designs([data], data.definition.get("model", ""), top)))
