"""Durable design-space sweeps on Optuna storage: queue sampled designs, run workers, resume after crashes.

    >>> status = run_sweep("S0", "minilm", ["rte", "sst2"], samples=100, workers=2, data_dir="shared/data")
    >>> run_worker("postgresql://user:pw@host/db", "S0-minilm-rte+sst2")     # join from any machine
    >>> sweep_status("sqlite:///runs/S0-minilm-rte+sst2.db", "S0-minilm-rte+sst2")["designs"]

Importing this package does not import torch; workers do.
"""

from peftspace.sweep.status import (cancel_waiting, design_counts, design_outcomes, finished_trials, retry_failed,
                                    sweep_status)
from peftspace.sweep.store import Heartbeat, SweepDefinition, SweepError
from peftspace.sweep.sweep import queue_sweep, resolve_space, run_local_workers, run_sweep
from peftspace.sweep.worker import run_design, run_worker

__all__ = ["Heartbeat", "SweepDefinition", "SweepError", "cancel_waiting", "design_counts", "design_outcomes", "finished_trials",
           "queue_sweep", "resolve_space", "retry_failed", "run_design", "run_local_workers", "run_sweep", "run_worker",
           "sweep_status"]
