"""Reports of sweeps and discoveries: an HTML page with PNG plots, written from a store.

    >>> write_report("sqlite:///runs/minilm.db", "report/")      # -> Path("report/index.html")

For each discovery: its settings, the decision table of its stages (options by mean error with the
recorded bootstrap intervals, KS tests, winner and verdict), one EDF plot per stage (and the
complexity-normalized EDF over shared bins when trainable counts vary), and its best designs with
their per-layer plans. A racing discovery's stages show the EDF of each raced option's validation
errors (what the race decided on; aliases beside their representative), every look's paired
differences, the eliminations, the verdict and winner rule, the trials used, the survivors' test
errors (reported only), the fidelity correlation and, for the strategy stage, its pool; its best
designs are ranked by validation error. For each plain sweep: its EDF, its designs per state, its failures with their
reasons, and its best designs. matplotlib draws on its Agg canvas; nothing global is switched.
"""

from peftspace.report.build import PlotRecord, Report, build_report, shared_log_edges, write_report

__all__ = ["PlotRecord", "Report", "build_report", "shared_log_edges", "write_report"]
