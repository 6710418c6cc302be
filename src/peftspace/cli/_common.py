"""What every command shares: the Typer app, the console, common options and small converters."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from peftspace.design import Design, PeftspaceError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Parameter-efficient fine-tuning design spaces.")
console = Console(width=None if sys.stdout.isatty() else 110)  # pipes and CI logs: no wrapping

MODEL = typer.Option("minilm", "--model", "-m", help="Model path, hub id, or alias ('minilm': the packaged MiniLM).")
DESIGN = typer.Option("s4-t5-base-recalled", "--design", "-d", help="Preset name or design file (.json/.yaml).")
BUDGET = typer.Option(None, "--budget", help="Override the budget: a fraction (0.005) or a count (120000).")


def resolve_design(design: str, budget: float | None) -> Design:
    from peftspace.api import _as_design

    chosen = _as_design(design)
    if budget is None:
        return chosen
    return chosen.with_budget(fraction=budget) if budget < 1 else chosen.with_budget(params=int(budget))


DEVICE = typer.Option("auto", "--device", help="Where trials run: auto (a CUDA GPU if torch sees one, else the CPU) | cpu | "
                                                "cuda | cuda:N. Not part of a sweep: workers on other devices may join it.")
WORKERS = typer.Option("1", "--workers", help="Local worker processes (0: none here, workers started elsewhere); auto: one per "
                                              "visible GPU, each pinned to its own (CUDA_VISIBLE_DEVICES), or one on a CPU.")


def parse_workers(value: str) -> int | str:
    """``--workers``: a non-negative count, or ``auto``."""
    if value.strip().lower() == "auto":
        return "auto"
    if not value.strip().isdigit():
        raise PeftspaceError(f"--workers {value!r} must be a non-negative integer or auto")
    return int(value)


DATA_DIR = typer.Option(None, "--data-dir", envvar="PEFTSPACE_DATA_DIR",
                        help="Directory with the tasks' files (layout of shared/data; a worker's copy of a task file's "
                             "data files); without it, the Hugging Face hub (and a task file's own paths).")


def tasks_option(default=...):
    return typer.Option(default, "--tasks", help="Comma-separated task names (sst2, rte, ...) or task files (.yaml/.json: "
                                                 "train/validation/test files, text_columns, label_column, kind).")


STORAGE = typer.Option(None, "--storage", help="Optuna storage URL: sqlite:///FILE.db or postgresql://user:pw@host/db.")


def quiet_optuna() -> None:
    import logging

    import optuna

    optuna.logging.set_verbosity(logging.WARNING)


THREADS = typer.Option(None, "--threads", help="Torch threads per worker (default: CPU count / workers).")
