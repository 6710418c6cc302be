"""Training commands: train one design on a task, re-score a saved run, compare designs at equal budget."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from peftspace.cli._common import (
    BUCKET_WINDOW,
    BUDGET,
    DATA_DIR,
    DEVICE,
    FAST_DROPOUT,
    FROZEN_BOTTOM,
    LR_MULTIPLIERS,
    MID_VALIDATION,
    MODEL,
    PRECISION,
    app,
    console,
    make_schedule,
    parse_lr_multipliers,
    resolve_design,
)
from peftspace.design.errors import PeftspaceError


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
    if record.get("mid_validation_metrics"):
        table.add_row(f"validation at step {record['steps'] // 2 or 1}",
                      ", ".join(f"{k} {v:.2f}" for k, v in record["mid_validation_metrics"].items()))
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
          kind: str = typer.Option("classification", help="Own data: classification or regression."),
          precision: str = PRECISION, bucket_window: int = BUCKET_WINDOW, frozen_bottom: str = FROZEN_BOTTOM,
          fast_dropout: bool = FAST_DROPOUT, lr_multipliers: str = LR_MULTIPLIERS, mid_validation: bool = MID_VALIDATION,
          device: str = DEVICE) -> None:
    """Train a design on a task, then save the design, its head and a metrics JSON."""
    from transformers.utils import logging as hf_logging

    from peftspace.runs import save_run
    from peftspace.trial import train_trial

    hf_logging.disable_progress_bar()
    multipliers = parse_lr_multipliers(lr_multipliers, learning_rate)
    data, source = _task(task, data_dir, seed, text_columns, label_column, kind)
    schedule = make_schedule(steps, epochs, batch_size, learning_rate, max_length, max_train_examples, max_eval_examples, format_,
                             precision, bucket_window, frozen_bottom, fast_dropout,
                             lr_multipliers=multipliers, mid_validation=mid_validation)
    with _progress() as bar:
        job = bar.add_task(f"{data.spec.name} seed {seed}", total=None, loss=float("nan"))
        trained = train_trial(resolve_design(design, budget), model, data, schedule, seed, device=device,
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

    from transformers.utils import logging as hf_logging

    from peftspace.runs import load_run, read_record
    from peftspace.schedule import Schedule
    from peftspace.trial import evaluate as score

    hf_logging.disable_progress_bar()
    record = read_record(run)
    source = record["task_source"]
    if "custom" in source:
        data, _ = _task(source["custom"], None, record["seed"], ",".join(source["text_columns"]), source["label_column"], source["kind"])
    else:
        data, _ = _task(source["task"], data_dir or source.get("data_dir"), record["seed"], None, None, "classification")
    model, fmt = load_run(run, data)
    schedule = Schedule.from_stored(record["schedule"])  # as trained: runs saved before --precision stay fp32
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
            max_train_examples: int = None, max_eval_examples: int = None, budget: float = BUDGET,
            precision: str = PRECISION, bucket_window: int = BUCKET_WINDOW, frozen_bottom: str = FROZEN_BOTTOM,
            fast_dropout: bool = FAST_DROPOUT, lr_multipliers: str = LR_MULTIPLIERS,
            mid_validation: bool = MID_VALIDATION, device: str = DEVICE) -> None:
    """Train designs x tasks x seeds at equal budget; write table.md and table.csv (resumable)."""
    from transformers.utils import logging as hf_logging

    from peftspace.compare import compare as run_compare

    hf_logging.disable_progress_bar()
    schedule = make_schedule(steps, None, batch_size, learning_rate, max_length, max_train_examples, max_eval_examples, None,
                             precision, bucket_window, frozen_bottom, fast_dropout,
                             lr_multipliers=parse_lr_multipliers(lr_multipliers, learning_rate), mid_validation=mid_validation)
    run_compare(designs.split(","), tasks.split(","), [int(s) for s in seeds.split(",")], model, out, schedule,
                data_dir=data_dir, budget=budget, progress=lambda key: console.print(f"trial {key}"), device=device)
    console.print((out / "table.md").read_text())
