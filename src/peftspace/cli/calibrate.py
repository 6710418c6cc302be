"""The calibrate command: a learning rate per strategy, chosen on validation scores (``peftspace.calibrate``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from peftspace.cli._common import BUDGET, DATA_DIR, MODEL, app, console, tasks_option
from peftspace.cli.options import SCHEDULE, make_schedule, with_options
from peftspace.design.errors import PeftspaceError


def parse_rates(value: str) -> list[float]:
    """``3e-4,1e-3,...`` as numbers; one error naming every entry that is not a positive number."""
    rates, bad = [], []
    for item in value.split(","):
        try:
            rate = float(item)
        except ValueError:
            rate = None
        if rate is None or not 0 < rate < float("inf"):
            bad.append(item.strip())
        else:
            rates.append(rate)
    if bad:
        raise PeftspaceError(f"--rates {value!r}: {bad} are not positive numbers (e.g. 3e-4,1e-3,3e-3,1e-2,3e-2)")
    return rates


@app.command()
@with_options(SCHEDULE)
def calibrate(model: str = MODEL, tasks: str = tasks_option("sst2,stsb"), data_dir: Path = DATA_DIR,
              rates: str = typer.Option("3e-4,1e-3,3e-3,1e-2,3e-2", "--rates", help="Comma-separated learning rates to try."),
              strategies: str = typer.Option("A,P,B,L", "--strategies", help="Strategies to calibrate (each trains its preset)."),
              seed: int = 0, budget: float = BUDGET,
              out: Path = typer.Option(None, "--out", help="Directory for the runs (resumable) and calibration.json "
                                                           "(default runs/calibrate-MODEL-TASKS)."),
              training: dict = None) -> None:
    """Train each strategy's preset on each task at each rate; choose each strategy's rate by mean validation score."""
    from transformers.utils import logging as hf_logging

    from peftspace.calibrate import RESULT
    from peftspace.calibrate import calibrate as run_calibration

    hf_logging.disable_progress_bar()
    letters = [c for c in strategies if c not in ", "]  # A,P,B,L or APBL
    grid = parse_rates(rates)
    if training["lr_multipliers"] is not None:
        raise PeftspaceError("calibrate chooses each strategy's rate from --rates: drop --lr-multipliers")
    schedule = make_schedule(training)
    learning_rate = schedule.learning_rate
    out = out or Path("runs") / f"calibrate-{Path(model).name}-{tasks.replace(',', '+')}"
    result = run_calibration(model, tasks.split(","), schedule, rates=grid, strategies=letters, seed=seed, budget=budget,
                             data_dir=data_dir, out=out, progress=lambda key: console.print(f"run {key}"))
    console.print(calibration_table(result))
    multipliers = ",".join(f"{k}={v:g}" for k, v in result["lr_multipliers"].items())
    console.print(f"lr_multipliers (relative to learning rate {learning_rate:g}): {multipliers or 'none chosen'}")
    console.print(f"wrote {out / RESULT}; train with it: --lr-multipliers {out / RESULT}")


def calibration_table(result: dict) -> Table:
    """Strategy x rate -> mean validation score over the tasks; the chosen rate marked *."""
    table = Table(title=f"mean validation score over {', '.join(result['tasks'])} (* chosen)")
    table.add_column("strategy")
    for rate in result["rates"]:
        table.add_column(f"{rate:g}", justify="right")
    for letter in result["strategies"]:
        cells = []
        for rate in result["rates"]:
            row = next(r for r in result["table"] if r["strategy"] == letter and r["rate"] == rate)
            score = row["mean_validation_score"]
            cell = f"failed ({', '.join(row['failed'])})" if score is None else f"{score:.2f}"
            cells.append(f"[bold]{cell} *[/bold]" if result["chosen"][letter] == rate else cell)
        table.add_row(letter, *cells)
    return table
