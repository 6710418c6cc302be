"""Design-space commands: sweep, worker, status, discover, report."""

from __future__ import annotations

from pathlib import Path

import typer

from peftspace.cli._common import (
    BUCKET_WINDOW,
    DATA_DIR,
    DEVICE,
    FAST_DROPOUT,
    FROZEN_BOTTOM,
    LR_MULTIPLIERS,
    MID_VALIDATION,
    MODEL,
    PRECISION,
    SCORE_VALIDATION,
    STORAGE,
    WORKERS,
    app,
    console,
    make_schedule,
    parse_lr_multipliers,
    parse_workers,
    quiet_optuna,
)


MAX_FAILURES = typer.Option(5, "--max-consecutive-failures",
                            help="Stop a worker after this many trials in a row that raised (a broken setup; 0: never).")


def _failure_limit(value: int) -> int | None:
    return None if value == 0 else value


def _print_sweep(status: dict) -> None:
    designs = status["designs"]
    shown = ("complete", "failed", "running", "waiting") + (("cancelled",) if designs.get("cancelled") else ())
    counts = ", ".join(f"{designs[s]} {s}" for s in shown)
    console.print(f"study {status['study']} in {status['storage']}: {counts} of {designs['total']} designs")
    best = status["best"]
    if best:
        console.print(f"best: design {best['design_index']} (trial {best['trial']}), error {best['error']:.2f}")
    for failure in status["failures"]:
        console.print(f"[yellow]failed[/yellow] design {failure['design_index']} (trial {failure['trial']}): {failure['reason']}")
    if status["duplicates"]:
        console.print(f"[red]designs with more than one finished trial: {status['duplicates']}[/red]")


@app.command()
def sweep(space: str = typer.Option(..., "--space", help="Built-in space S0..S4, or a space file (.yaml/.json)."),
          model: str = MODEL, tasks: str = typer.Option(..., "--tasks", help="Comma-separated task names."),
          samples: int = typer.Option(100, help="Designs drawn from the space."),
          workers: str = WORKERS, device: str = DEVICE,
          storage: str = STORAGE, study: str = typer.Option(None, "--study", help="Study name (default SPACE-MODEL-TASKS)."),
          seed: int = 0, data_dir: Path = DATA_DIR, steps: int = 300, batch_size: int = 32, learning_rate: float = 1e-3,
          max_length: int = 128, max_train_examples: int = None, max_eval_examples: int = None,
          threads: int = typer.Option(None, help="Torch threads per worker (default: CPU count / workers)."),
          heartbeat_interval: int = typer.Option(60, help="Seconds between a running trial's heartbeats."),
          grace_period: int = typer.Option(None, help="Silence after which a trial's worker is dead (default 2 x interval)."),
          max_retry: int = typer.Option(3, help="Re-queues of a design whose worker died."),
          retry_failed: bool = typer.Option(False, "--retry-failed", help="First re-queue designs that diverged or raised."),
          precision: str = PRECISION, bucket_window: int = BUCKET_WINDOW, frozen_bottom: str = FROZEN_BOTTOM,
          fast_dropout: bool = FAST_DROPOUT, score_validation: bool = SCORE_VALIDATION,
          max_consecutive_failures: int = MAX_FAILURES, lr_multipliers: str = LR_MULTIPLIERS,
          mid_validation: bool = MID_VALIDATION) -> None:
    """Sample designs from a space, queue them in an Optuna study, train them with local workers (resumable)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from peftspace.sweep import Heartbeat, run_sweep

    quiet_optuna()
    schedule = make_schedule(steps, None, batch_size, learning_rate, max_length, max_train_examples, max_eval_examples, None,
                             precision, bucket_window, frozen_bottom, fast_dropout,
                             score_validation,
                             lr_multipliers=parse_lr_multipliers(lr_multipliers, learning_rate), mid_validation=mid_validation)
    columns = (TextColumn("sweep"), BarColumn(), TextColumn("{task.fields[counts]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        job = bar.add_task("sweep", total=samples, counts="")

        def show(counts):
            bar.update(job, completed=counts["complete"] + counts["failed"], total=counts["total"],
                       counts=", ".join(f"{counts[s]} {s}" for s in ("complete", "failed", "running", "waiting")))

        status = run_sweep(space, model, tasks, samples, seed, parse_workers(workers), storage, study, schedule, data_dir, show,
                           threads=threads, device=device,
                           heartbeat=Heartbeat(heartbeat_interval, grace_period, max_retry), retry_failed=retry_failed,
                           max_consecutive_failures=_failure_limit(max_consecutive_failures))
    _print_sweep(status)


@app.command()
def worker(storage: str = typer.Option(..., "--storage", help="The sweep's Optuna storage URL."),
           study: str = typer.Option(..., "--study", help="The sweep's study; several, comma-separated, or a pattern "
                                                          "such as 'NAME/S1/*' (a discovery stage's sweeps)."),
           data_dir: Path = DATA_DIR,
           threads: int = typer.Option(None, help="Torch threads for this worker."),
           max_consecutive_failures: int = MAX_FAILURES, device: str = DEVICE,
           follow: bool = typer.Option(False, "--follow/--no-follow", help="Also run sweeps created later under the "
                                       "pattern (a discovery's next stages, 'NAME/*'), until discovery NAME is done or "
                                       "nothing was queued for --idle-timeout seconds."),
           idle_timeout: float = typer.Option(600.0, "--idle-timeout", help="With --follow: seconds without queued "
                                                                            "designs before the worker stops.")) -> None:
    """Join a sweep: run its queued designs until none is left (start any number, on any machine)."""
    from transformers.utils import logging as hf_logging

    from peftspace.devices import resolve_device
    from peftspace.sweep import run_worker, sweep_status
    from peftspace.sweep.store import matching_sweeps

    quiet_optuna()
    hf_logging.disable_progress_bar()

    def show(summary):
        ok = summary["status"] == "ok"
        outcome = f"error {summary['error']:.2f}" if ok else f"[yellow]failed[/yellow]: {summary['reason']}"
        console.print(f"trial {summary['trial']} design {summary['design_index']}: {outcome} ({summary['wall_time_s']:.0f} s)")

    resolve_device(device)  # a CUDA request without CUDA: one clear error, before the store is read
    options = dict(threads=threads, on_trial=show, device=device,
                   max_consecutive_failures=_failure_limit(max_consecutive_failures))
    if follow:
        from peftspace.sweep.worker import discovery_done, follow_sweeps

        discovery = study.split(",")[0].split("/")[0]
        ran = follow_sweeps(storage, study, data_dir, until=lambda: discovery_done(storage, discovery),
                            idle_timeout=idle_timeout, **options)
        studies = matching_sweeps(storage, study) if ran else []
    else:
        studies = matching_sweeps(storage, study)
        ran = run_worker(storage, studies, data_dir, **options)
    console.print(f"this worker ran {ran} trial(s)")
    for name in studies:
        _print_sweep(sweep_status(storage, name))


@app.command()
def status(storage: str = typer.Option(..., "--storage", help="The sweep's Optuna storage URL."),
           study: str = typer.Option(..., "--study", help="The sweep's study name."),
           as_json: bool = typer.Option(False, "--json", help="Print the full status as JSON.")) -> None:
    """Show where a sweep stands: designs per state, the best design, failures and their reasons."""
    import json

    from peftspace.sweep import sweep_status

    quiet_optuna()
    result = sweep_status(storage, study)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        _print_sweep(result)


@app.command()
def report(store: str = typer.Argument(..., help="The Optuna storage URL (or .db file) of sweeps or discoveries."),
           out: Path = typer.Option(Path("report"), "--out", help="Directory for index.html and its PNG plots."),
           study: str = typer.Option(None, "--study", help="Only these studies or discoveries (comma-separated).")) -> None:
    """Write an HTML report: EDF curves per subspace and stage, the decision table, the best designs with their plans."""
    from peftspace.report import write_report

    quiet_optuna()
    page = write_report(store, out, studies=study.split(",") if study else None)
    console.print(f"report written to {page}")
