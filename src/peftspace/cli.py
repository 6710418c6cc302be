"""The command line: a thin shell over the Python API."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from peftspace.design import STRATEGY_NAMES, Design, Plan
from peftspace.design.errors import PeftspaceError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Parameter-efficient fine-tuning design spaces.")
console = Console(width=None if sys.stdout.isatty() else 110)  # pipes and CI logs: no wrapping

MODEL = typer.Option("minilm", "--model", "-m", help="Model path, hub id, or alias ('minilm': the packaged MiniLM).")
DESIGN = typer.Option("s4-t5-base-recalled", "--design", "-d", help="Preset name or design file (.json/.yaml).")
BUDGET = typer.Option(None, "--budget", help="Override the budget: a fraction (0.005) or a count (120000).")


def _design(design: str, budget: float | None) -> Design:
    from peftspace.api import _as_design

    chosen = _as_design(design)
    if budget is None:
        return chosen
    return chosen.with_budget(fraction=budget) if budget < 1 else chosen.with_budget(params=int(budget))


def plan_table(plan: Plan) -> Table:
    title = plan.design.name or "design"
    table = Table(title=f"{title} on {plan.model_type}: parameters per layer and strategy")
    for column in ("layer", "stack", "group", "sizes", "budget", "A", "P", "B", "L", "total"):
        table.add_column(column, justify="left" if column in ("stack", "sizes") else "right")
    planned = {layer.index: layer for layer in plan.layers}
    last = max([g[1] for g in plan.groups], default=-1)
    group_of = {i: g for g, (first, end) in enumerate(plan.groups) for i in range(first, end + 1)}
    for index in range(last + 1):
        layer = planned.get(index)
        if layer is None:
            table.add_row(str(index), "", str(group_of[index]), "[dim]frozen[/dim]", "0", "", "", "", "", "0")
            continue
        cells = [f"{layer.counts[s]:,}" if s in layer.counts else "" for s in ("A", "P", "B", "L")]
        table.add_row(str(index), layer.stack[:3], str(layer.group), layer.describe(), f"{layer.budget:,}", *cells, f"{layer.total:,}")
    return table


def print_plan(plan: Plan, actual: int | None = None) -> None:
    console.print(plan_table(plan))
    console.print(f"backbone    {plan.backbone_parameters:>12,}  parameters, task heads excluded")
    console.print(f"budget      {plan.budget:>12,}  ({100 * plan.budget / plan.backbone_parameters:.3f}% of the backbone)")
    console.print(f"planned     {plan.total:>12,}  ({100 * plan.fraction:.3f}%): " +
                  ", ".join(f"{STRATEGY_NAMES[s]} {n:,}" for s, n in plan.strategy_totals().items()))
    if plan.training_total != plan.total:
        console.print(f"training    {plan.training_total:>12,}  (prefix MLP reparameterization)")
    if actual is not None:
        status = "[green]matches the plan[/green]" if actual == plan.training_total else "[red]differs from the plan[/red]"
        console.print(f"trainable   {actual:>12,}  counted on the model after apply: {status}")
    for note in plan.notes:
        console.print(f"[yellow]note[/yellow]: {note}")


@app.command()
def plan(model: str = MODEL, design: str = DESIGN, budget: float = BUDGET) -> None:
    """Plan a design on a model's config (no weights loaded): per-layer strategies, sizes, counts."""
    from peftspace.api import plan as make_plan
    from peftspace.models import load_config

    print_plan(make_plan(load_config(model), _design(design, budget)))
    console.print("[dim]sizes: A adapter bottleneck, P prefix length, B BitFit (fixed), L LoRA rank[/dim]")


@app.command()
def build(model: str = MODEL, design: str = DESIGN, budget: float = BUDGET,
          save: Path = typer.Option(None, "--save", help="Save the (untrained) design here.")) -> None:
    """Load a model, apply a design, and print its plan with the real trainable count."""
    import peftspace
    from peftspace.models import load_backbone

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    backbone = load_backbone(model)
    the_plan = peftspace.apply(backbone, _design(design, budget))
    print_plan(the_plan, actual=sum(p.numel() for p in backbone.parameters() if p.requires_grad))
    if save is not None:
        peftspace.save(backbone, save)
        console.print(f"saved to {save}")
    console.print("[dim]sizes: A adapter bottleneck, P prefix length, B BitFit (fixed), L LoRA rank[/dim]")


DATA_DIR = typer.Option(None, "--data-dir", envvar="PEFTSPACE_DATA_DIR",
                        help="Directory with the tasks' files (layout of shared/data); without it, the Hugging Face hub.")


def _schedule(steps, epochs, batch_size, learning_rate, max_length, max_train_examples, max_eval_examples, format_):
    from peftspace.trial import Schedule

    return Schedule(max_steps=None if epochs else steps, epochs=epochs or 1.0, batch_size=batch_size,
                    learning_rate=learning_rate, max_length=max_length, max_train_examples=max_train_examples,
                    max_eval_examples=max_eval_examples, format=format_)


def _task(task: str, data_dir, seed: int, text_columns: str | None, label_column: str | None, kind: str):
    """A task by name, or a CSV/JSONL file of the user's own (with its columns)."""
    from peftspace.tasks import load_custom, load_task

    if Path(task).suffix.lower() in (".csv", ".jsonl", ".json"):
        if not text_columns or not label_column:
            raise PeftspaceError("a CSV/JSONL task needs --text-columns (e.g. sentence or premise,hypothesis) and --label-column")
        source = {"custom": str(Path(task).resolve()), "text_columns": text_columns.split(","), "label_column": label_column, "kind": kind}
        return load_custom(task, text_columns=source["text_columns"], label_column=label_column, kind=kind, seed=seed), source
    return load_task(task, data_dir, seed=seed), {"task": task, "data_dir": str(data_dir) if data_dir else None}


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
                    TimeRemainingColumn(), console=console, transient=False)


def _print_metrics(record: dict) -> None:
    table = Table(title=f"{record['task']}: {record['status']}" + (f" ({record['reason']})" if record.get("reason") else ""))
    for column in ("split", "metrics"):
        table.add_column(column)
    for split, metrics in record.get("metrics", {}).items():
        table.add_row(split, ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
    console.print(table)
    if "trainable" in record:
        t = record["trainable"]
        console.print(f"trainable: design {t['design']:,} ({100 * t['design'] / t['backbone']:.3f}% of {t['backbone']:,}), head {t['head']:,}"
                      f"; {record['steps']} steps, {record['wall_time_s']:.0f} s")


@app.command()
def train(model: str = MODEL, design: str = typer.Option("lora", "--design", "-d", help="Preset name or design file."),
          task: str = typer.Option(..., "--task", "-t", help="Task name (sst2, rte, ..., xsum, wmt16_en_ro) or a CSV/JSONL file."),
          data_dir: Path = DATA_DIR, seed: int = 0, steps: int = 300, epochs: float = typer.Option(None, help="Train for epochs instead of steps."),
          batch_size: int = 32, learning_rate: float = 1e-3, max_length: int = 128,
          max_train_examples: int = None, max_eval_examples: int = None,
          format_: str = typer.Option(None, "--format", help="head | text-to-text | label-scoring (default: by model family)."),
          budget: float = BUDGET, out: Path = typer.Option(None, "--out", help="Run directory (default runs/TASK-DESIGN-seedN)."),
          text_columns: str = typer.Option(None, help="Own data: comma-separated text columns."),
          label_column: str = typer.Option(None, help="Own data: the label column."),
          kind: str = typer.Option("classification", help="Own data: classification or regression.")) -> None:
    """Train a design on a task, then save the design, its head and a metrics JSON."""
    from transformers.utils import logging as hf_logging

    from peftspace.runs import save_run
    from peftspace.trial import train_trial

    hf_logging.disable_progress_bar()
    data, source = _task(task, data_dir, seed, text_columns, label_column, kind)
    schedule = _schedule(steps, epochs, batch_size, learning_rate, max_length, max_train_examples, max_eval_examples, format_)
    with _progress() as bar:
        job = bar.add_task(f"{data.spec.name} seed {seed}", total=None, loss=float("nan"))
        trained = train_trial(_design(design, budget), model, data, schedule, seed,
                              progress=lambda step, total, loss: bar.update(job, completed=step, total=total, loss=loss))
    out = out or Path("runs") / f"{data.spec.name}-{Path(design).stem}-seed{seed}"
    save_run(trained, out, source)
    _print_metrics(trained.record)
    console.print(f"saved to {out}")
    if trained.record["status"] != "ok":
        raise SystemExit(1)


@app.command()
def evaluate(run: Path = typer.Argument(..., help="A directory written by `peftspace train`."),
             data_dir: Path = DATA_DIR, split: str = typer.Option("test", help="test, validation, or both")) -> None:
    """Re-score a saved run on its task."""
    from dataclasses import replace

    from transformers.utils import logging as hf_logging

    from peftspace.runs import load_run, read_record
    from peftspace.trial import Schedule, evaluate as score

    hf_logging.disable_progress_bar()
    record = read_record(run)
    source = record["task_source"]
    if "custom" in source:
        data, _ = _task(source["custom"], None, record["seed"], ",".join(source["text_columns"]), source["label_column"], source["kind"])
    else:
        data, _ = _task(source["task"], data_dir or source.get("data_dir"), record["seed"], None, None, "classification")
    model, fmt = load_run(run, data)
    schedule = replace(Schedule(), **{k: v for k, v in record["schedule"].items()})
    splits = ["validation", "test"] if split == "both" else [split]
    scores = {s: score(model, fmt, data, s, schedule, record["seed"]) for s in splits}
    _print_metrics({"task": record["task"], "status": "re-scored", "metrics": scores})
    for s in splits:
        if scores[s] != record["metrics"].get(s):
            console.print(f"[yellow]{s} differs from the recorded {record['metrics'].get(s)}[/yellow]")


@app.command()
def compare(model: str = MODEL,
            designs: str = typer.Option("adapter,prefix,bitfit,lora,s4-t5-base-recalled", help="Comma-separated presets or files."),
            tasks: str = typer.Option("sst2,mrpc,rte", help="Comma-separated task names."),
            seeds: str = typer.Option("0,1", help="Comma-separated seeds."),
            data_dir: Path = DATA_DIR, out: Path = typer.Option(Path("runs/compare"), "--out"),
            steps: int = 300, batch_size: int = 32, learning_rate: float = 1e-3, max_length: int = 128,
            max_train_examples: int = None, max_eval_examples: int = None, budget: float = BUDGET) -> None:
    """Train designs x tasks x seeds at equal budget; write table.md and table.csv (resumable)."""
    from transformers.utils import logging as hf_logging

    from peftspace.compare import compare as run_compare

    hf_logging.disable_progress_bar()
    schedule = _schedule(steps, None, batch_size, learning_rate, max_length, max_train_examples, max_eval_examples, None)
    run_compare(designs.split(","), tasks.split(","), [int(s) for s in seeds.split(",")], model, out, schedule,
                data_dir=data_dir, budget=budget, progress=lambda key: console.print(f"trial {key}"))
    console.print((out / "table.md").read_text())


STORAGE = typer.Option(None, "--storage", help="Optuna storage URL: sqlite:///FILE.db or postgresql://user:pw@host/db.")


def _quiet_optuna() -> None:
    import logging

    import optuna

    optuna.logging.set_verbosity(logging.WARNING)


def _print_sweep(status: dict) -> None:
    designs = status["designs"]
    counts = ", ".join(f"{designs[s]} {s}" for s in ("complete", "failed", "running", "waiting"))
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
          workers: int = typer.Option(1, help="Local worker processes (0: only create and queue the sweep)."),
          storage: str = STORAGE, study: str = typer.Option(None, "--study", help="Study name (default SPACE-MODEL-TASKS)."),
          seed: int = 0, data_dir: Path = DATA_DIR, steps: int = 300, batch_size: int = 32, learning_rate: float = 1e-3,
          max_length: int = 128, max_train_examples: int = None, max_eval_examples: int = None,
          threads: int = typer.Option(None, help="Torch threads per worker (default: CPU count / workers)."),
          heartbeat_interval: int = typer.Option(60, help="Seconds between a running trial's heartbeats."),
          grace_period: int = typer.Option(None, help="Silence after which a trial's worker is dead (default 2 x interval)."),
          max_retry: int = typer.Option(3, help="Re-queues of a design whose worker died."),
          retry_failed: bool = typer.Option(False, "--retry-failed", help="First re-queue designs that diverged or raised.")) -> None:
    """Sample designs from a space, queue them in an Optuna study, train them with local workers (resumable)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from peftspace.sweep import Heartbeat, run_sweep

    _quiet_optuna()
    schedule = _schedule(steps, None, batch_size, learning_rate, max_length, max_train_examples, max_eval_examples, None)
    columns = (TextColumn("sweep"), BarColumn(), TextColumn("{task.fields[counts]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        job = bar.add_task("sweep", total=samples, counts="")

        def show(counts):
            bar.update(job, completed=counts["complete"] + counts["failed"], total=counts["total"],
                       counts=", ".join(f"{counts[s]} {s}" for s in ("complete", "failed", "running", "waiting")))

        status = run_sweep(space, model, tasks, samples, seed, workers, storage, study, schedule, data_dir, show, threads=threads,
                           heartbeat=Heartbeat(heartbeat_interval, grace_period, max_retry), retry_failed=retry_failed)
    _print_sweep(status)


@app.command()
def worker(storage: str = typer.Option(..., "--storage", help="The sweep's Optuna storage URL."),
           study: str = typer.Option(..., "--study", help="The sweep's study name."), data_dir: Path = DATA_DIR,
           threads: int = typer.Option(None, help="Torch threads for this worker.")) -> None:
    """Join a sweep: run its queued designs until none is left (start any number, on any machine)."""
    from transformers.utils import logging as hf_logging

    from peftspace.sweep import run_worker, sweep_status

    _quiet_optuna()
    hf_logging.disable_progress_bar()

    def show(summary):
        ok = summary["status"] == "ok"
        outcome = f"error {summary['error']:.2f}" if ok else f"[yellow]failed[/yellow]: {summary['reason']}"
        console.print(f"trial {summary['trial']} design {summary['design_index']}: {outcome} ({summary['wall_time_s']:.0f} s)")

    ran = run_worker(storage, study, data_dir, threads=threads, on_trial=show)
    console.print(f"this worker ran {ran} trial(s)")
    _print_sweep(sweep_status(storage, study))


@app.command()
def status(storage: str = typer.Option(..., "--storage", help="The sweep's Optuna storage URL."),
           study: str = typer.Option(..., "--study", help="The sweep's study name."),
           as_json: bool = typer.Option(False, "--json", help="Print the full status as JSON.")) -> None:
    """Show where a sweep stands: designs per state, the best design, failures and their reasons."""
    import json

    from peftspace.sweep import sweep_status

    _quiet_optuna()
    result = sweep_status(storage, study)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        _print_sweep(result)


@app.command()
def presets() -> None:
    """List the built-in designs."""
    from peftspace.design.presets import PRESETS

    table = Table(title="presets")
    table.add_column("name")
    table.add_column("description")
    for name, design in PRESETS.items():
        table.add_row(name, design.description)
    console.print(table)


def main() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # load reports and deprecation chatter drown the tables
    try:
        app(standalone_mode=False)
    except PeftspaceError as error:
        console.print(f"[red]error:[/red] {error}")
        raise SystemExit(2) from None
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except Exception as error:  # click usage errors
        import click

        if isinstance(error, click.ClickException):
            error.show()
            raise SystemExit(error.exit_code) from None
        raise


if __name__ == "__main__":
    main()
