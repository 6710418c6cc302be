"""What the racing stage gets right and what it costs, against the paper's fixed-N protocol, on synthetic stages.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/discovery_sim.py --runs 1000                 # --noise blocks
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/discovery_sim.py --runs 1000 --noise seeds

Noise model (``peftspace.analysis.simulate.StageModel``), estimated from real MiniLM trials:

- ``--noise blocks`` (default): from the racing blocks of a finished discovery (``--blocks``, default
  ``docs/discovery-minilm``: its store and decisions.json; every stage's blocks x options validation
  errors). A two-way additive fit (block + option) per stage gives the context sd and the residuals
  (``estimate_block_variances``); each synthetic trial's interaction + noise is one of those real
  residuals, drawn at random, so the real tails and modes (STS-B learning or not) carry over.
- ``--noise seeds``: the 5 designs x 2 seeds of ``docs/compare-minilm/trials.jsonl`` with each design's
  error over SST-2 and RTE (one-way random-effects ANOVA, ``estimate_variances``) give the context and
  noise sds; the interaction sd is an assumption (1.0, printed); noise has Student-t tails (3 df).

Either way 5 % of trials fail. Each scenario runs ``--runs``
racing stages and as many paper stages (N = 100 designs per option, unpaired, failures dropped,
lowest mean wins) on the same truth. torch-free; the table is the acceptance evidence of the racing
procedure.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from peftspace.analysis.racing import RacePlan
from peftspace.analysis.simulate import (StageModel, estimate_block_variances, estimate_variances, simulate_paper,
                                         simulate_race, summarize)

ROOT = Path(__file__).resolve().parents[1]


def real_variances(path: Path, tasks: tuple[str, ...]) -> dict:
    scores: dict = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("status") == "ok" and record["task"] in tasks:
            scores.setdefault((record["design"]["name"], record["seed"]), {})[record["task"]] = record["score"]
    rows = [{"design": design, "seed": seed, "error": 100 - float(np.mean([s[t] for t in tasks]))}
            for (design, seed), s in scores.items() if set(s) == set(tasks)]
    return estimate_variances(rows)


def block_variances(directory: Path) -> dict:
    """``estimate_block_variances`` over every racing stage of the discovery in ``directory`` (its store.db and
    decisions.json): the blocks x options validation errors each stage raced on."""
    from peftspace.sweep.status import design_outcomes  # optuna, no torch

    log = json.loads((directory / "decisions.json").read_text())
    url = f"sqlite:///{directory / 'store.db'}"
    stages = []
    for entry in log["stages"]:
        options = list(entry.get("raced") or ())
        cells = {}
        for row in design_outcomes(url, entry["study"]) if options else ():
            if row["state"] == "complete":
                for option in row.get("options") or ():
                    if option in options:
                        cells[(row["block"], options.index(option))] = row["validation_error"]
        if cells:
            errors = np.full((1 + max(b for b, _ in cells), len(options)), np.nan)
            for (block, column), value in cells.items():
                errors[block, column] = value
            stages.append(errors)
    return estimate_block_variances(stages)


def scenarios(delta: float) -> dict[str, dict[str, float]]:
    d = delta
    return {
        "5 equal (grouping)": dict.fromkeys(["spindle", "uniform", "increasing", "decreasing", "bottleneck"], 30.0),
        "5, best by delta": {"a": 30.0, "b": 30 + d, "c": 30 + d, "d": 30 + 2 * d, "e": 30 + 3 * d},
        "5, best by 2 delta": {"a": 30.0, "b": 30 + 2 * d, "c": 30 + 2.5 * d, "d": 30 + 3 * d, "e": 30 + 4 * d},
        "5, two within delta/2": {"a": 30.0, "b": 30 + d / 2, "c": 30 + 2 * d, "d": 30 + 3 * d, "e": 30 + 3 * d},
        "3 equal (allocation)": dict.fromkeys(["uniform", "increasing", "decreasing"], 30.0),
        "3, best by delta": {"a": 30.0, "b": 30 + d, "c": 30 + 2 * d},
        "2 equal (tuned)": dict.fromkeys(["all", "any"], 30.0),
        "2, best by delta": {"a": 30.0, "b": 30 + d},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--paper-n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", choices=("blocks", "seeds"), default="blocks")
    parser.add_argument("--blocks", type=Path, default=ROOT / "docs" / "discovery-minilm")
    parser.add_argument("--trials", type=Path, default=ROOT / "docs" / "compare-minilm" / "trials.jsonl")
    parser.add_argument("--tasks", default="sst2,rte")
    parser.add_argument("--interaction-sd", type=float, default=1.0)
    parser.add_argument("--noise-df", type=float, default=3.0)
    parser.add_argument("--failure-rate", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--delta", type=float, default=1.0)
    parser.add_argument("--max-blocks", type=int, default=20)
    parser.add_argument("--first-look", type=int, default=5)
    parser.add_argument("--look-every", type=int, default=5)
    args = parser.parse_args()

    if args.noise == "blocks":
        estimate = block_variances(args.blocks)
        model = StageModel(context_sd=estimate["context_sd"], residuals=estimate["residuals"],
                           failure_rate=args.failure_rate)
        print(f"variances from the racing blocks of {_shown(args.blocks)} ({estimate['stages']} stages, {estimate['cells']} "
              f"trials, {estimate['residual_df']} residual df): context sd {estimate['context_sd']:.2f}, residual sd "
              f"{estimate['residual_sd']:.2f} (each trial draws one of the {estimate['cells']} real residuals)")
    else:
        estimate = real_variances(args.trials, tuple(args.tasks.split(",")))
        model = StageModel(context_sd=estimate["context_sd"], interaction_sd=args.interaction_sd,
                           noise_sd=estimate["noise_sd"], noise_df=args.noise_df, failure_rate=args.failure_rate)
        print(f"variances from {_shown(args.trials)} ({estimate['designs']} designs, {estimate['trials']} trials, error over "
              f"{args.tasks}): context sd {estimate['context_sd']:.2f}, noise sd {estimate['noise_sd']:.2f}")
    plan = RacePlan(args.alpha, args.delta, args.max_blocks, args.first_look, args.look_every)
    shown_model = (f"context sd {model.context_sd:.2f}, real residuals, failure rate {model.failure_rate}" if model.residuals
                   else str(model))
    print(f"model: {shown_model}\nplan: {plan.to_dict()} (looks at {plan.looks}, alpha per look {plan.alpha_per_look:.4f})\n")
    header = (f"{'scenario':24} {'protocol':9} {'runs':>5} {'best kept':>9} {'best won':>8} {'won<=d':>7} "
              f"{'any elim':>8} {'med trials':>10} {'p90':>5} {'/ paper':>7}")
    print(header + "\n" + "-" * len(header))
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    for name, means in scenarios(args.delta).items():
        racing = [simulate_race(means, model, plan, rng) for _ in range(args.runs)]
        paper = [simulate_paper(means, model, args.paper_n, rng) for _ in range(args.runs)]
        paper_trials = args.paper_n * len(means)
        for label, outcomes in (("racing", racing), (f"paper N={args.paper_n}", paper)):
            s = summarize(outcomes, means, args.delta)
            p90 = float(np.percentile([o.trials for o in outcomes], 90))
            print(f"{name:24} {label:9} {s.runs:5d} {s.best_kept:9.3f} {s.best_chosen:8.3f} {s.within_delta:7.3f} "
                  f"{s.any_eliminated:8.3f} {s.median_trials:10.0f} {p90:5.0f} {s.median_trials / paper_trials:7.2f}")
    print(f"\n'best kept': the truly best option survives; 'best won': it is the winner; 'won<=d': the winner is within delta "
          f"of the best; 'any elim': some option eliminated (every elimination is wrong when the options are equal); "
          f"the paper's protocol keeps only its winner and eliminates nothing. {time.perf_counter() - started:.0f} s")


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
