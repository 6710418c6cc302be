"""Method comparison at equal budget: designs x tasks x seeds, as a paper-style table.

Every finished trial is appended to ``trials.jsonl`` as soon as it ends, so an interrupted
comparison resumes where it stopped; the tables are rebuilt from that file.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from peftspace.trial import Schedule, TrialCache, run_trial

RECORDS = "trials.jsonl"


def trial_key(design: str, task: str, seed: int) -> str:
    return f"{design}|{task}|{seed}"


def compare(designs: list[str], tasks: list[str], seeds: list[int], model: str, out_dir: str | Path,
            schedule: Schedule = Schedule(), data_dir=None, budget: float | None = None, progress=None,
            device: str = "auto") -> list[dict]:
    """Run every (design, task, seed) not yet in ``out_dir`` and write ``table.md``/``table.csv``.

    ``device``: where the trials run (``peftspace.devices``); records made on another device are kept.
    """
    from peftspace.api import _as_design
    from peftspace.devices import resolve_device
    from peftspace.tasks.task_file import resolve_tasks, task_names

    device = str(resolve_device(device))  # one clear error for CUDA without CUDA, before any trial
    resolved = resolve_tasks(tasks)  # names or task files; rows and keys use the tasks' names
    tasks = task_names(resolved)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = {r["key"]: r for r in read_records(out_dir)}
    _check_same_data(done.values(), resolved, out_dir)
    cache = TrialCache()  # one backbone load and one tokenization per task for all the trials
    for name in designs:
        design = _as_design(name)
        if budget is not None:
            design = design.with_budget(fraction=budget) if budget < 1 else design.with_budget(params=int(budget))
        for task, source in zip(tasks, resolved):
            for seed in seeds:
                key = trial_key(name, task, seed)
                if key in done:
                    continue
                if progress is not None:
                    progress(key)
                record = run_trial(design, model, source, schedule, seed, data_dir=data_dir, cache=cache, device=device)
                record["key"], record["design_name"] = key, name
                if not isinstance(source, str):
                    record["task_sha256"] = source.sha256
                with (out_dir / RECORDS).open("a") as f:
                    f.write(json.dumps(record) + "\n")
    records = [r for r in read_records(out_dir) if r["key"].split("|")[0] in designs]
    rows = summarize(records, designs, tasks)
    write_tables(rows, tasks, out_dir, model=model, seeds=seeds, schedule=schedule)
    return rows


def _check_same_data(records, tasks, out_dir: Path) -> None:
    """Refuse to continue a comparison whose task files' data changed since its records were made."""
    from peftspace.tasks import TaskError

    hashes = {t.name: t.sha256 for t in tasks if not isinstance(t, str)}
    for record in records:
        stored = record.get("task_sha256")
        if stored is not None and record["task"] in hashes and stored != hashes[record["task"]]:
            raise TaskError(f"{out_dir}: its records of task {record['task']!r} were trained on other data (the task "
                            f"file's data files changed since); use another --out for the new data")


def read_records(out_dir: Path) -> list[dict]:
    path = Path(out_dir) / RECORDS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(records: list[dict], designs: list[str], tasks: list[str]) -> list[dict]:
    """One row per design: per-task mean and std of the test score over seeds, and the average."""
    rows = []
    for name in designs:
        mine = [r for r in records if r["design_name"] == name and r["status"] == "ok"]
        row = {"design": name, "failed": sum(1 for r in records if r["design_name"] == name and r["status"] != "ok")}
        means = []
        for task in tasks:
            scores = [r["score"] for r in mine if r["task"] == task]
            row[task] = (float(np.mean(scores)), float(np.std(scores)), len(scores)) if scores else None
            if scores:
                means.append(np.mean(scores))
        row["average"] = float(np.mean(means)) if len(means) == len(tasks) else None
        row["design_parameters"] = mine[0]["trainable"]["design"] if mine else None
        row["head_parameters"] = mine[0]["trainable"]["head"] if mine else None
        row["backbone_parameters"] = mine[0]["trainable"]["backbone"] if mine else None
        row["wall_time_s"] = float(np.mean([r["wall_time_s"] for r in mine])) if mine else None
        rows.append(row)
    return rows


def write_tables(rows: list[dict], tasks: list[str], out_dir: Path, **context) -> None:
    header = ["design", *tasks, "average", "trainable (design)", "% of backbone", "head", "time/trial (s)"]
    with (out_dir / "table.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["design", *[f"{t}_{s}" for t in tasks for s in ("mean", "std", "n")], "average",
                         "design_parameters", "head_parameters", "backbone_parameters", "wall_time_s", "failed"])
        for row in rows:
            cells = [x for t in tasks for x in (row[t] or ("", "", 0))]
            writer.writerow([row["design"], *cells, row["average"], row["design_parameters"], row["head_parameters"],
                             row["backbone_parameters"], row["wall_time_s"], row["failed"]])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        share = (f"{100 * row['design_parameters'] / row['backbone_parameters']:.3f}%" if row["design_parameters"] else "")
        cells = [f"{row[t][0]:.1f} ± {row[t][1]:.1f}" if row[t] else "failed" for t in tasks]
        average = f"{row['average']:.1f}" if row["average"] is not None else ""
        lines.append("| " + " | ".join([row["design"], *cells, average, f"{row['design_parameters'] or 0:,}", share,
                                         f"{row['head_parameters'] or 0:,}", f"{row['wall_time_s'] or 0:.0f}"]) + " |")
    schedule = context.get("schedule")
    notes = [f"Model `{context.get('model')}`, seeds {context.get('seeds')}; test = the task's dev set (GLUE test labels are hidden); "
             "scores are the mean of each task's official metrics (x100), mean ± std over seeds; average: unweighted mean over tasks.",
             f"Schedule: {json.dumps(schedule.__dict__) if schedule else ''}"]
    (out_dir / "table.md").write_text("\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n")
