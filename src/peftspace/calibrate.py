"""Learning rates per strategy: train each single-strategy preset at a grid of rates, keep the best.

Strategies learn at very different rates (a prefix needs a far larger one than LoRA), so a sweep
that trains every design at one ``learning_rate`` ranks strategies partly by how well that rate
suits them. ``calibrate`` trains the ``adapter``, ``prefix``, ``bitfit`` and ``lora`` presets on
each task at each rate of a grid and picks, per strategy, the rate with the best mean
*validation* score over the tasks (the test split is recorded, never used to choose). The result's
``lr_multipliers`` are those rates relative to the schedule's ``learning_rate``: what
``Schedule(lr_multipliers=...)`` (``--lr-multipliers``) takes.

Each run is the trial the chosen multipliers later give: the design's parameters at
``learning_rate * multiplier``, the task head at the schedule's own head rate whatever the grid
says. Every finished run is appended to ``calibration_runs.jsonl`` in ``out``, so an interrupted
calibration resumes where it stopped; runs stored there with other settings are refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from peftspace.design import PeftspaceError
from peftspace.schedule import STRATEGY_LETTERS, Schedule

RUNS = "calibration_runs.jsonl"
RESULT = "calibration.json"
DEFAULT_RATES = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
PRESETS = {"A": "adapter", "P": "prefix", "B": "bitfit", "L": "lora"}


def calibrate(model: str, tasks, schedule: Schedule = Schedule(), *, rates=DEFAULT_RATES, strategies=STRATEGY_LETTERS,
              seed: int = 0, budget: float | None = None, data_dir=None, out=None, cache=None, progress=None) -> dict:
    """Train every strategy's preset on every task at every rate; choose each strategy's rate by validation.

    Args:
        model: the backbone (path, hub id or alias).
        tasks: task names (a list or a comma-separated string).
        schedule: the trial schedule; its ``learning_rate`` is the base the multipliers are relative to.
        rates: the learning rates to try for each strategy's parameters.
        strategies: the letters to calibrate (each trains its single-strategy preset).
        seed: the trials' seed.
        budget: the presets' budget, a fraction (< 1) or a parameter count; default theirs.
        out: a directory for ``calibration_runs.jsonl`` (resume) and ``calibration.json``; None: keep nothing.
        cache: a ``TrialCache`` to share; default a new one.
        progress: called with each run's key (``strategy|task|rate|seed``) before it trains.

    Returns:
        JSON-ready: the settings, every run's scores (``runs``), mean scores per strategy and rate
        (``table``), the ``chosen`` rate per strategy (None where every rate failed on some task)
        and ``lr_multipliers`` (chosen rate / ``schedule.learning_rate``, for the strategies chosen).
    """
    from peftspace.tasks.task_file import resolve_tasks, task_names
    from peftspace.trial import TrialCache, run_trial

    tasks = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    rates, strategies = [float(r) for r in rates], list(strategies)
    _check(tasks, rates, strategies)
    resolved = resolve_tasks(tasks)
    sources = dict(zip(task_names(resolved), resolved))  # name -> a built-in name or a task file
    tasks = list(sources)
    out = None if out is None else Path(out)
    stored = read_runs(out) if out is not None else []
    planned = {run_key(letter, task, rate, seed): (letter, task, rate)
               for letter in strategies for task in tasks for rate in rates}
    designs = {letter: _design(letter, budget) for letter in strategies}
    runs = {}
    for record in stored:
        if record["key"] in planned:
            letter, _, rate = planned[record["key"]]
            _check_stored(record, model, designs[letter], run_schedule(schedule, letter, rate), out)
            runs[record["key"]] = record
    cache = TrialCache() if cache is None else cache
    for key, (letter, task, rate) in planned.items():
        if key in runs:
            continue
        if progress is not None:
            progress(key)
        record = run_trial(designs[letter], model, sources[task], run_schedule(schedule, letter, rate), seed,
                           data_dir=data_dir, cache=cache)
        record.update(key=key, strategy=letter, task_name=task, rate=rate)
        runs[key] = record
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            with (out / RUNS).open("a") as f:
                f.write(json.dumps(record) + "\n")
    result = summarize([runs[key] for key in planned], tasks, rates, strategies, schedule.learning_rate)
    result.update(model=model, seed=seed, budget=budget, schedule=schedule.to_dict())
    if out is not None:
        (out / RESULT).write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_schedule(schedule: Schedule, letter: str, rate: float) -> Schedule:
    """The schedule of one run: ``letter``'s parameters at ``rate``, the head at the base schedule's head rate."""
    return replace(schedule, head_learning_rate=schedule.head_learning_rate or schedule.learning_rate,
                   lr_multipliers={**schedule.lr_multipliers, letter: multiplier(rate, schedule.learning_rate)},
                   score_validation=True)


def multiplier(rate: float, base: float) -> float:
    """``rate / base``, rounded to 12 significant digits (3e-3 / 1e-3 is 3, not 2.9999999999999996)."""
    return float(f"{rate / base:.12g}")


def run_key(letter: str, task: str, rate: float, seed: int) -> str:
    return f"{letter}|{task}|{rate!r}|{seed}"


def read_runs(out: Path) -> list[dict]:
    path = Path(out) / RUNS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(runs: list[dict], tasks: list[str], rates: list[float], strategies: list[str], base: float) -> dict:
    """Mean validation and test scores per strategy and rate; each strategy's best rate by mean validation score.

    A rate whose run failed on any task has no mean and is never chosen; ties go to the rate listed first.
    """
    table, chosen = [], {}
    for letter in strategies:
        best = None
        for rate in rates:
            mine = {r["task_name"]: r for r in runs if r["strategy"] == letter and r["rate"] == rate}
            ok = [mine[t] for t in tasks if t in mine and mine[t]["status"] == "ok"]
            complete = len(ok) == len(tasks)
            row = {"strategy": letter, "rate": rate,
                   "mean_validation_score": float(np.mean([r["validation_score"] for r in ok])) if complete else None,
                   "mean_test_score": float(np.mean([r["score"] for r in ok])) if complete else None,
                   "validation_scores": {t: mine[t].get("validation_score") for t in tasks if t in mine},
                   "test_scores": {t: mine[t].get("score") for t in tasks if t in mine},
                   "failed": [t for t in tasks if t in mine and mine[t]["status"] != "ok"]}
            table.append(row)
            if row["mean_validation_score"] is not None and (best is None or row["mean_validation_score"] > best[1]):
                best = (rate, row["mean_validation_score"])
        chosen[letter] = None if best is None else best[0]
    return {"tasks": tasks, "rates": rates, "strategies": strategies, "base_learning_rate": base,
            "runs": [_summary(r) for r in runs], "table": table, "chosen": chosen,
            "lr_multipliers": {letter: multiplier(rate, base) for letter, rate in chosen.items() if rate is not None}}


def _summary(record: dict) -> dict:
    return {key: record.get(key) for key in ("key", "strategy", "task_name", "rate", "seed", "status", "reason",
                                             "validation_score", "score", "metrics", "trainable", "wall_time_s")}


def _design(letter: str, budget: float | None):
    from peftspace.design.presets import preset

    design = preset(PRESETS[letter])
    if budget is None:
        return design
    return design.with_budget(fraction=budget) if budget < 1 else design.with_budget(params=int(budget))


def _check(tasks: list[str], rates: list[float], strategies: list[str]) -> None:
    problems = []
    if not tasks:
        problems.append("no tasks given")
    if not rates:
        problems.append("no rates given")
    problems += [f"rate {r!r} must be a positive finite number" for r in rates if not (math.isfinite(r) and r > 0)]
    if len(set(rates)) != len(rates):
        problems.append(f"rates {rates} repeat a rate")
    problems += [f"unknown strategy {s!r}; strategies are {list(STRATEGY_LETTERS)}" for s in strategies if s not in PRESETS]
    if not strategies or len(set(strategies)) != len(strategies):
        problems.append(f"strategies {strategies} must be one or more distinct letters")
    if problems:
        raise PeftspaceError("calibrate: " + "; ".join(problems))


def _check_stored(record: dict, model: str, design, schedule: Schedule, out: Path) -> None:
    """Refuse a stored run of the same key that was trained otherwise than this calibration would train it."""
    stored_schedule = Schedule.from_stored(record["schedule"]).to_dict()
    differences = [f"{k}: stored {json.dumps(stored_schedule.get(k))}, given {json.dumps(v)}"
                   for k, v in schedule.to_dict().items() if stored_schedule.get(k) != v]
    if record["model"] != model:
        differences.insert(0, f"model: stored {record['model']!r}, given {model!r}")
    if record["design"] != design.to_dict():
        differences.append("the preset's design (another budget?)")
    if differences:
        raise PeftspaceError(f"{out / RUNS} holds run {record['key']} trained with other settings, so this calibration cannot "
                             f"resume it (repeat the stored settings, or choose another out directory); differences: "
                             + "; ".join(differences))
