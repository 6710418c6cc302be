"""``write_report``: read a store, draw its EDFs, and write ``index.html`` with the PNGs beside it.

The statistics come from :mod:`peftspace.analysis` (``edf``, ``normalized_edf``; the rankings are
the ones the discovery recorded); :mod:`peftspace.report.plots` only draws them and
:mod:`peftspace.report.page` only lays them out.
"""

from __future__ import annotations

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
class StageView:
    stage: dict
    edf: PlotRecord | None
    normalized: PlotRecord | None
    normalized_note: str | None


@dataclass(frozen=True)
class DiscoveryView:
    data: DiscoveryData
    stages: tuple[StageView, ...]
    best: tuple[BestDesign, ...]
    final_plan: tuple[object | None, str | None] = (None, None)  # the discovered design's plan, or why none


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

    def draw(self, kind: str, owner: str, stage: str | None, curves: dict[str, Curve], title: str, edges=None) -> PlotRecord:
        name = f"{len(self.records) + 1:02d}-{_slug(owner)}{'-' + _slug(stage) if stage else ''}-{kind}.png"
        ylabel = EDF_Y if edges is None else "fraction of designs, reweighted"
        drawn = draw_steps(self.folder / name, curves, title=title, xlabel=ERROR_X, ylabel=ylabel)
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
    return DiscoveryView(data, stages, tuple(best_designs(data.sweeps.values(), model, top)), final_plan)


def _stage(plots: _Plots, data: DiscoveryData, stage: dict) -> StageView:
    """The EDF of every option with finished designs, and their normalized EDFs over shared bins."""
    label = str(stage.get("stage", "?"))
    sweeps = {}
    for option, entry in (stage.get("options") or {}).items():
        sweep = data.sweeps.get(entry.get("study"))
        if sweep is not None and sweep.trials:
            sweeps[option] = sweep
    if not sweeps:
        return StageView(stage, None, None, None)
    winner = stage.get("winner")
    title = f"{data.name}: {label} {stage.get('title') or stage.get('component') or ''}".strip()
    curves = {}
    for option, sweep in sweeps.items():
        x, y = edf(sweep.errors)
        curves[option] = Curve(x, y, _label(option, sweep, winner), option == winner)
    edf_plot = plots.draw("edf", data.name, label, curves, f"{title}: EDF of errors")
    normalized, note = _normalized(plots, data.name, label, title, sweeps, winner)
    return StageView(stage, edf_plot, normalized, note)


def _normalized(plots: _Plots, owner: str, stage: str, title: str, sweeps: dict[str, SweepData], winner):
    counts = {option: [row.get("trainable") for row in sweep.trials] for option, sweep in sweeps.items()}
    flat = [c for values in counts.values() for c in values]
    if any(not isinstance(c, (int, float)) or not c > 0 for c in flat):
        return None, "no complexity-normalized EDF: some finished designs have no positive trainable-parameter count"
    if len(set(flat)) < 2:
        return None, f"no complexity-normalized EDF: every design trains the same number of parameters ({flat[0]:,})"
    edges = shared_log_edges(flat)
    curves = {}
    for option, sweep in sweeps.items():
        result = normalized_edf(sweep.errors, counts[option], bins=edges)
        curves[option] = Curve(result.x, result.F, _label(option, sweep, winner), option == winner)
    record = plots.draw("normalized-edf", owner, stage, curves,
                        f"{title}: complexity-normalized EDF ({len(edges) - 1} log bins of trainable parameters, shared)",
                        edges)
    return record, None


def _label(option: str, sweep: SweepData, winner) -> str:
    return f"{option} (n={len(sweep.trials)}{', winner' if option == winner else ''})"


def _sweep(plots: _Plots, data: SweepData, top: int) -> SweepView:
    record = None
    if data.trials:
        x, y = edf(data.errors)
        curves = {data.study: Curve(x, y, f"{data.study} (n={len(data.trials)})")}
        record = plots.draw("edf", data.study, None, curves, f"{data.study}: EDF of errors")
    return SweepView(data, record, tuple(best_designs([data], data.definition.get("model", ""), top)))
