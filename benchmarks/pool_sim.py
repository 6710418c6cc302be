"""Strategy assignment from one pool vs the paper's greedy search, simulated on known truths.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/pool_sim.py --runs 1000          # the table of the report
    ... --pool-size 140 --block-sizes none,2,3,4,8,140 --scenarios additive      # which blocking works best
    ... --pool-size 140,150 --block-sizes 4,8 --max-blocks 15 --greedy-n ''      # a shorter final race, a larger pool
    ... --terms subsets                                                          # per-subset dummies instead

Each run draws a truth (``peftspace.analysis.pool_search.draw_truth``: per group, the 15 subsets'
contributions with sd 1.5 over the subsets, built from per-method effects, a function of the
subset's size and subset-specific terms, plus pairwise interactions between groups), then searches
it. **Pool**: ``--pool-size`` designs drawn balanced, trained once each (StageModel defaults: noise
sd 1.5 with t3 tails, option x context interaction sd 1.0, 5 % failures, context sd 7.0, a context
per design or one per block of ``--block-sizes`` designs sharing a seed), the effects fit (block
fixed effects when blocked), then a paired race (RacePlan defaults: alpha 0.05, delta 1, looks at
5, 10, 15, 20 blocks) among the two best predicted assignments and the recalled T5-base S4
assignment. **Greedy**: the paper's 4 groups x 15 subsets x N designs, lowest mean wins each group.

Columns: ``within d``: the chosen assignment's true error is within delta of the truly best
assignment's (exhaustive search over 15^4); ``fit within d``: the same for the fit's top prediction
before the race; ``oracle``: for the effects model with unlimited data (the ceiling of any choice
made through it); regret quantiles in error points; trials of pool and race together. Every
procedure of a scenario runs on the same truths. torch-free.

Measured (1,000 runs, seed 0, AMD EPYC, 2 shared cores): with the truth inside the model
("additive"), 140 designs in blocks of 4 and the default race land within delta in 0.88 of runs
(median 185 trials, at most 200); 150 in blocks of 4-8 with ``--max-blocks 15``: 0.89-0.91 (at most
195); without blocks 0.13 (the context sd 7 swamps the effects); the greedy search 0.01 (N=3, 180
trials) and 0.05 (N=10, 600). Blocks of 4-20 are alike, of 2 worse (0.75: too many block effects),
one seed for the whole pool worse (0.80: failures then take the pool's worst). Away from the model
the ceiling ("oracle", of the one-pool effects model) falls: 0.82 with a size effect beyond k>=2,
0.40 with subset terms and interactions of sd 0.5 in all, 0.16 with sd 0.5 for each pair of groups.

Two pools (``--pool-size 96 --second-pool 64 --narrow 3 --max-blocks 13``, at most 199 trials; the
docs/pool-sim/two-pools-96-64.txt) against one pool of 140 with the default
race (at most 200; docs/pool-sim/one-pool-140.txt), same truths: additive 0.881 vs 0.881, size
0.834 vs 0.689, mixed 0.622 vs 0.299, pairwise 0.385 vs 0.150 (narrowing to 2 subsets: 0.884,
0.793, 0.469, 0.271). The second pool sees subset terms within the narrowed space, so it passes the
one-pool model's ceiling. With the real racing blocks' noise (``--noise blocks``: residual sd 8.3,
docs/pool-sim/two-pools-real-noise.txt) even the additive truth is found within delta in 0.076 of
runs: at that noise 200 trials cannot resolve effects of about a point. Spending the race's trials on
the pools instead (``--pool-size 96 --second-pool 88 --max-blocks 5``, 199 trials, the discovery's
default; docs/pool-sim/two-pools-96-88-mb5.txt): additive 0.912, size 0.848, mixed 0.623, pairwise
0.336.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: BLAS threads only contend on a shared machine
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/discovery_sim.py: the real blocks' noise

from peftspace.analysis.pool_search import draw_truth, simulate_greedy, simulate_pool_search  # noqa: E402
from peftspace.analysis.racing import RacePlan  # noqa: E402
from peftspace.analysis.simulate import StageModel  # noqa: E402

PAIRS = 6  # pairs of the 4 groups
SCENARIOS = {  # draw_truth arguments: how far the truth lies from the effects model
    "additive": dict(size_sd=0.0, subset_sd=0.0, interaction_sd=0.0),  # per-method effects only: the model is right
    "size": dict(size_sd=0.5, subset_sd=0.0, interaction_sd=0.0),  # + a function of the number of methods
    "mixed": dict(size_sd=0.5, subset_sd=0.5, interaction_sd=0.5 / PAIRS ** 0.5),  # + subset terms, interactions sd 0.5 in all
    "pairwise 0.5": dict(size_sd=0.5, subset_sd=0.5, interaction_sd=0.5),  # interactions sd 0.5 for each pair of groups
}


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def summarize(results: list[dict], delta: float, oracle: list[float] | None) -> dict:
    regret = np.array([r["regret"] for r in results])
    trials = np.array([r["trials"] for r in results])
    row = {"runs": len(results), "within_delta": float(np.mean(regret <= delta + 1e-12)),
           "regret_median": float(np.median(regret)), "regret_p90": float(np.percentile(regret, 90)),
           "trials_median": float(np.median(trials)), "trials_p90": float(np.percentile(trials, 90)), "trials_max": int(trials.max())}
    if "predicted_regret" in results[0]:
        row["fit_within_delta"] = float(np.mean(np.array([r["predicted_regret"] for r in results]) <= delta + 1e-12))
        row["race_decided"] = float(np.mean([r["race_status"] == "decided" for r in results]))
    if oracle is not None:
        row["oracle_within_delta"] = float(np.mean(np.array(oracle) <= delta + 1e-12))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--pool-size", default="60,100,140", help="comma-separated pool sizes")
    parser.add_argument("--block-sizes", default="none,4", help="designs per block sharing a seed; none: a context per design")
    parser.add_argument("--greedy-n", default="3,10", help="designs per subspace of the greedy search ('' for none)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from {list(SCENARIOS)}")
    parser.add_argument("--terms", default="methods", choices=("methods", "subsets"))
    parser.add_argument("--finalists", type=int, default=3, help="options in the final race (the best predicted, and the recalled S4)")
    parser.add_argument("--max-blocks", type=int, default=RacePlan.max_blocks, help="the final race's max_blocks")
    parser.add_argument("--second-pool", default="0", help="comma-separated sizes of a second pool narrowed to each "
                                                           "group's --narrow best predicted subsets (0: none)")
    parser.add_argument("--narrow", default="3", help="comma-separated subsets kept per group for the second pool")
    parser.add_argument("--noise", choices=("model", "blocks"), default="model",
                        help="model: StageModel's defaults; blocks: context sd and residuals of the real racing blocks of "
                             "--blocks (benchmarks/discovery_sim.py --noise blocks)")
    parser.add_argument("--blocks", default=str(Path(__file__).resolve().parents[1] / "docs" / "discovery-minilm"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()

    model, plan = StageModel(), RacePlan(max_blocks=args.max_blocks, first_look=min(RacePlan.first_look, args.max_blocks))
    if args.noise == "blocks":
        from discovery_sim import block_variances

        estimate = block_variances(Path(args.blocks))
        model = StageModel(context_sd=estimate["context_sd"], residuals=estimate["residuals"])
        print(f"noise: the racing blocks of {args.blocks}: context sd {estimate['context_sd']:.2f}, residual sd "
              f"{estimate['residual_sd']:.2f} ({estimate['cells']} real residuals drawn)")
    seconds = [int(n) for n in args.second_pool.split(",")]
    narrows = [int(k) for k in args.narrow.split(",")]
    pools = [int(p) for p in args.pool_size.split(",")]
    blocks = [None if b == "none" else int(b) for b in args.block_sizes.split(",")]
    greedy = [int(n) for n in args.greedy_n.split(",") if n]
    print(f"CPU: {cpu_model()}; model: {model}; plan: {plan.to_dict()}; finalists: {args.finalists}; terms: {args.terms}; "
          f"runs: {args.runs}; seed: {args.seed}")
    header = (f"{'scenario':13} {'procedure':30} {'within d':>8} {'fit w/d':>7} {'oracle':>6} {'regret p50':>10} {'p90':>5} "
              f"{'trials p50':>10} {'p90':>4} {'max':>4} {'s':>5}")
    print(header + "\n" + "-" * len(header))
    rows = []
    for s, scenario in enumerate(args.scenarios.split(",")):
        truths = [draw_truth(np.random.default_rng([args.seed, s, run]), **SCENARIOS[scenario]) for run in range(args.runs)]
        bests = [t.best()[1] for t in truths]
        oracle = [t.error(t.oracle(args.terms)) - b for t, b in zip(truths, bests)]
        procedures = [(f"pool {p}{f'+{q} k={k}' if q else ''}, {'blocks of ' + str(b) if b else 'no blocks'}", "pool", p, b,
                       q, k) for p in pools for b in blocks for q in seconds for k in (narrows if q else narrows[:1])]
        procedures += [(f"greedy N={n}", "greedy", n, None, 0, 0) for n in greedy]
        for k, (name, kind, size, block, second, keep) in enumerate(procedures):
            start = time.perf_counter()
            results = []
            for run, truth in enumerate(truths):
                rng = np.random.default_rng([args.seed, s, run, k + 1])
                if kind == "pool":
                    results.append(simulate_pool_search(truth, model, size, plan, rng, block_size=block, terms=args.terms,
                                                        finalists=args.finalists, second_pool=second, narrow=keep))
                else:
                    results.append(simulate_greedy(truth, model, size, rng))
            row = summarize(results, plan.delta, oracle if kind == "pool" else None)
            row.update(scenario=scenario, procedure=name, seconds=time.perf_counter() - start)
            rows.append(row)
            fit = f"{row['fit_within_delta']:7.3f}" if "fit_within_delta" in row else f"{'-':>7}"
            ceiling = f"{row['oracle_within_delta']:6.3f}" if "oracle_within_delta" in row else f"{'-':>6}"
            print(f"{scenario:13} {name:30} {row['within_delta']:8.3f} {fit} {ceiling} {row['regret_median']:10.2f} "
                  f"{row['regret_p90']:5.2f} {row['trials_median']:10.0f} {row['trials_p90']:4.0f} {row['trials_max']:4d} "
                  f"{row['seconds']:5.0f}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "cpu": cpu_model(), "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
