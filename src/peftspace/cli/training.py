"""Training commands: train one design on a task, re-score a saved run, compare designs at equal budget."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from peftspace.cli._common import BUDGET, DATA_DIR, DEVICE, MODEL, app, console, resolve_design, tasks_option
from peftspace.cli.options import SCHEDULE, make_schedule, with_options
from peftspace.design.errors import PeftspaceError

DATA_FILE_SUFFIXES = (".csv", ".tsv", ".jsonl")


def _task(task: str, data_dir, seed: int, text_columns: str | None, label_column: str | None, kind: str,
          test_file: str | None = None):
    """A task by name, a task file, or a CSV/TSV/JSONL file of the user's own (with its columns): ``(data, source)``.

    ``source`` is what a saved run keeps to load the task again (a task file's content and data hashes).
    """
    from peftspace.tasks import is_task_file, load_custom, load_task, read_task_file

    if Path(task).suffix.lower() in DATA_FILE_SUFFIXES:
        if not text_columns or not label_column:
            raise PeftspaceError("a CSV/TSV/JSONL task needs --text-columns (e.g. sentence or premise,hypothesis) and "
                                 "--label-column (or give a task file, .yaml/.json, that declares them)")
        source = {"custom": str(Path(task).resolve()), "text_columns": text_columns.split(","), "label_column": label_column,
                  "kind": kind}
        if test_file:
            source["test"] = str(Path(test_file).resolve())
        data = load_custom(task, text_columns=source["text_columns"], label_column=label_column, kind=kind, seed=seed,
                           test_path=test_file)
        return data, source
    if test_file:
        raise PeftspaceError(f"--test-file goes with a CSV/TSV/JSONL --task; {task!r} brings its own test split "
                             f"(a task file declares it with 'test:')")
    if is_task_file(task):
        declared = read_task_file(task)
        return declared.load(seed), {**declared.stored(), "locations": declared.locations()}
    return load_task(task, data_dir, seed=seed), {"task": task, "data_dir": str(data_dir) if data_dir else None}


def _saved_task(source: dict, data_dir, seed: int):
    """The task a saved run was trained on, from its recorded source (a task file's data checked by hash)."""
    from peftspace.tasks import TaskFile

    if "task_file" in source:
        return TaskFile.from_stored(source, data_dir, source.get("locations")).load(seed)
    if "custom" in source:
        return _task(source["custom"], None, seed, ",".join(source["text_columns"]), source["label_column"], source["kind"],
                     source.get("test"))[0]
    return _task(source["task"], data_dir or source.get("data_dir"), seed, None, None, "classification")[0]


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
@with_options(SCHEDULE)
def train(model: str = MODEL, design: str = typer.Option("lora", "--design", "-d", help="Preset name or design file."),
          task: str = typer.Option(..., "--task", "-t", help="Task name (sst2, rte, ..., xsum, wmt16_en_ro), a task file "
                                                           "(.yaml/.json) or a CSV/TSV/JSONL file."),
          data_dir: Path = DATA_DIR, seed: int = 0, epochs: float = typer.Option(None, help="Train for epochs instead of steps."),
          format_: str = typer.Option(None, "--format", help="head | text-to-text | label-scoring (default: by model family)."),
          budget: float = BUDGET, out: Path = typer.Option(None, "--out", help="Run directory (default runs/TASK-DESIGN-seedN)."),
          text_columns: str = typer.Option(None, help="CSV/TSV/JSONL task: comma-separated text columns."),
          label_column: str = typer.Option(None, help="CSV/TSV/JSONL task: the label column."),
          kind: str = typer.Option("classification", help="CSV/TSV/JSONL task: classification or regression."),
          test_file: str = typer.Option(None, "--test-file", help="CSV/TSV/JSONL task: its test split (default: carved "
                                                                  "from --task with a fixed seed)."),
          device: str = DEVICE, training: dict = None) -> None:
    """Train a design on a task, then save the design, its head and a metrics JSON."""
    from transformers.utils import logging as hf_logging

    from peftspace.runs import save_run
    from peftspace.trial import train_trial

    hf_logging.disable_progress_bar()
    if epochs is not None and training["steps"] is not None:
        raise PeftspaceError("give --steps or --epochs, not both")
    schedule = make_schedule(training, **({"max_steps": None, "epochs": epochs} if epochs else {}),
                             **({"format": format_} if format_ else {}))
    data, source = _task(task, data_dir, seed, text_columns, label_column, kind, test_file)
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
    data = _saved_task(record["task_source"], data_dir, record["seed"])
    model, fmt = load_run(run, data)
    schedule = Schedule.from_stored(record["schedule"])  # as trained: runs saved before --precision stay fp32
    splits = ["validation", "test"] if split == "both" else [split]
    scores = {s: score(model, fmt, data, s, schedule, record["seed"]) for s in splits}
    _print_metrics({"task": record["task"], "status": "re-scored", "metrics": scores})
    for s in splits:
        if scores[s] != record["metrics"].get(s):
            console.print(f"[yellow]{s} differs from the recorded {record['metrics'].get(s)}[/yellow]")


@app.command()
@with_options(SCHEDULE)
def compare(model: str = MODEL,
            designs: str = typer.Option("adapter,prefix,bitfit,lora,s4-t5-base-recalled", help="Comma-separated presets or files."),
            tasks: str = tasks_option("sst2,mrpc,rte"),
            seeds: str = typer.Option("0,1", help="Comma-separated seeds."),
            data_dir: Path = DATA_DIR, out: Path = typer.Option(Path("runs/compare"), "--out"), budget: float = BUDGET,
            device: str = DEVICE, training: dict = None) -> None:
    """Train designs x tasks x seeds at equal budget; write table.md and table.csv (resumable)."""
    from transformers.utils import logging as hf_logging

    from peftspace.compare import compare as run_compare

    hf_logging.disable_progress_bar()
    try:
        seed_list = [int(s) for s in seeds.split(",")]
    except ValueError:
        raise PeftspaceError(f"--seeds {seeds!r} must be comma-separated integers, e.g. 0,1") from None
    run_compare(designs.split(","), tasks.split(","), seed_list, model, out, make_schedule(training),
                data_dir=data_dir, budget=budget, progress=lambda key: console.print(f"trial {key}"), device=device)
    console.print((out / "table.md").read_text())
