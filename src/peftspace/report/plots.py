"""Drawing the report's figures: step curves on matplotlib's Agg canvas, saved as PNG.

Plotting only draws: every curve arrives already computed (by :mod:`peftspace.analysis`). No
pyplot and no global backend switch: each figure is a ``matplotlib.figure.Figure`` with its own
Agg canvas, so nothing here touches matplotlib's global state or needs a display.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_STYLES = ("-", "--", ":", "-.")  # after the 10 colors of the default cycle, change the line style


@dataclass(frozen=True)
class Curve:
    """One curve to draw: its points and its legend label. ``emphasis`` draws it thicker (a stage's winner)."""

    x: np.ndarray
    y: np.ndarray
    label: str
    emphasis: bool = False


def draw_steps(path: Path, curves: Mapping[str, Curve], *, title: str, xlabel: str,
               ylabel: str) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """Draw each curve as a right-continuous step function (``steps-post``) and save a PNG at ``path``.

    Args:
        path: the PNG to write.
        curves: key (e.g. the option's name) -> :class:`Curve`; drawn in this order.
        title, xlabel, ylabel: the axes' texts.

    Returns:
        key -> ``(x, y, label)`` as read back from the lines on the axes before saving: what was drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for i, (key, curve) in enumerate(curves.items()):
        axes.plot(np.asarray(curve.x, dtype=float), np.asarray(curve.y, dtype=float), drawstyle="steps-post",
                  linestyle=_STYLES[(i // 10) % len(_STYLES)], linewidth=2.6 if curve.emphasis else 1.5,
                  marker="o", markersize=3, label=curve.label, gid=key)
    axes.set_title(textwrap.fill(title, 80), fontsize=10)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_ylim(0.0, 1.02)
    axes.grid(alpha=0.3)
    if curves:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    drawn = {line.get_gid(): (np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float),
                              line.get_label()) for line in axes.get_lines()}
    figure.savefig(path, format="png")
    return drawn
