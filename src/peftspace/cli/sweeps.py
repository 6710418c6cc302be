"""Design-space commands: sweep, worker, status, discover, report."""

from __future__ import annotations

from pathlib import Path

import typer

from peftspace.cli._common import DATA_DIR, DEVICE, MODEL, STORAGE, app, console, parse_workers, quiet_optuna, tasks_option
from peftspace.cli.options import RUN, SCHEDULE, SPACE, apply_space_options, make_schedule, with_options


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
@with_options(SPACE, RUN, SCHEDULE)
def sweep(space: str = typer.Option(..., "--space", help="Built-in space S0..S4, or a space file (.yaml/.json)."),
          model: str = MODEL, tasks: str = tasks_option(),
          samples: int = typer.Option(100, help="Designs drawn from the space."),
          study: str = typer.Option(None, "--study", help="Study name (default SPACE-MODEL-TASKS)."),
          heartbeat_interval: int = typer.Option(60, help="Seconds between a running trial's heartbeats."),
          grace_period: int = typer.Option(None, help="Silence after which a trial's worker is dead (default 2 x interval)."),
          max_retry: int = typer.Option(3, help="Re-queues of a design whose worker died."),
          retry_failed: bool = typer.Option(False, "--retry-failed", help="First re-queue designs that diverged or raised."),
          max_consecutive_failures: int = MAX_FAILURES, space_options: dict = None, run: dict = None,
          training: dict = None) -> None:
    """Sample designs from a space, queue them in an Optuna study, train them with local workers (resumable)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from peftspace.sweep import Heartbeat, run_sweep
    from peftspace.sweep.sweep import resolve_space

    quiet_optuna()
    schedule = make_schedule(training)
    chosen = apply_space_options(resolve_space(space), space_options, model)
    columns = (TextColumn("sweep"), BarColumn(), TextColumn("{task.fields[counts]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        job = bar.add_task("sweep", total=samples, counts="")

        def show(counts):
            bar.update(job, completed=counts["complete"] + counts["failed"], total=counts["total"],
                       counts=", ".join(f"{counts[s]} {s}" for s in ("complete", "failed", "running", "waiting")))

        status = run_sweep(chosen, model, tasks, samples, run["seed"], parse_workers(run["workers"]), run["storage"], study,
                           schedule, run["data_dir"], show, threads=run["threads"], device=run["device"],
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


STORE = typer.Argument(None, help="The Optuna storage URL or .db file (or --storage).", show_default=False)


def _store(positional: str | None, storage: str | None) -> str:
    """The store given as the argument or as --storage (the same way for status and report): its URL, checked."""
    from peftspace.design.errors import PeftspaceError
    from peftspace.report.collect import store_url

    if positional and storage and positional != storage:
        raise PeftspaceError(f"two stores given: {positional!r} and --storage {storage!r}; give one")
    if not (positional or storage):
        raise PeftspaceError("give the store: a .db file or a storage URL, as the argument or --storage")
    return store_url(positional or storage)


@app.command()
def status(store: str = STORE, storage: str = STORAGE,
           study: str = typer.Option(None, "--study", help="Sweeps (comma-separated or a pattern such as 'NAME/S1/*'); "
                                                           "default: the store's only sweep or discovery."),
           as_json: bool = typer.Option(False, "--json", help="Print the full status as JSON.")) -> None:
    """Show where sweeps stand: designs per state, the best design, failures and their reasons."""
    import json

    from peftspace.sweep import sweep_status
    from peftspace.sweep.store import default_sweeps, matching_sweeps

    quiet_optuna()
    url = _store(store, storage)
    results = [sweep_status(url, name) for name in (matching_sweeps(url, study) if study else default_sweeps(url))]
    if as_json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    else:
        for result in results:
            _print_sweep(result)


@app.command()
def report(store: str = STORE, storage: str = STORAGE,
           out: Path = typer.Option(Path("report"), "--out", help="Directory for index.html and its PNG plots."),
           study: str = typer.Option(None, "--study", help="Only these studies or discoveries (comma-separated; default: "
                                                           "all in the store).")) -> None:
    """Write an HTML report: EDF curves per subspace and stage, the decision table, the best designs with their plans."""
    from peftspace.report import write_report

    quiet_optuna()
    page = write_report(_store(store, storage), out, studies=study.split(",") if study else None)
    console.print(f"report written to {page}")
