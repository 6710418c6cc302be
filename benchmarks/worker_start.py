"""Worker start-up benchmark (issue 12): the time a local worker spends outside trials.

    .venv/bin/python benchmarks/worker_start.py                          # this checkout, 1 and 6 sweeps, 3 reps
    .venv/bin/python benchmarks/worker_start.py --against /tmp/old/src   # A/B: another checkout's src, alternated

A discovery queues many one-design sweeps into one store and runs local workers over them. Each run
here queues K one-design LoRA sweeps (SST-2, 10 steps, seed 0 for all, dev scored) into a fresh SQLite
store and runs ``run_local_workers`` with 1 worker and ``--threads`` threads. "Outside" is the workers'
wall time minus the trials' own recorded wall time: spawn, imports, task data, store opens, polling and
teardown. Each rep runs in a fresh interpreter; with ``--against`` the two sides alternate so that drift
on a shared machine hits both. Compare the sides of one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(sweeps: int, data_dir: str, threads: int) -> dict:
    import optuna
    from optuna.trial import TrialState

    sys.path.insert(0, str(HERE))
    from sweep import SPACE  # the sweep benchmark's LoRA-only space

    from peftspace.schedule import Schedule
    from peftspace.sweep.sweep import queue_sweep, run_local_workers

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    schedule = Schedule.from_dict({"max_steps": 10, "batch_size": 32, "eval_batch_size": 64,
                                   "max_length": 64, "max_eval_examples": None, "score_validation": False})
    url = f"sqlite:///{tempfile.mkdtemp()}/sweeps.db"
    names = [queue_sweep(SPACE, "minilm", ["sst2"], 1, 0, url, f"s{i}", schedule)[1] for i in range(sweeps)]
    start = time.perf_counter()
    run_local_workers(url, names, data_dir, 1, threads)
    total = time.perf_counter() - start
    trials = sum(trial.user_attrs["wall_time_s"]
                 for name in names
                 for trial in optuna.load_study(study_name=name, storage=url).get_trials(states=(TrialState.COMPLETE,)))
    import peftspace
    return {"sweeps": sweeps, "source": str(Path(peftspace.__file__).parents[1]), "workers_s": total, "trials_s": trials, "outside_s": total - trials}


def run_side(src: str | None, sweeps: int, args) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, __file__, "--one", str(sweeps), "--data-dir", args.data_dir,
                          "--threads", str(args.threads)], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweeps", default="1,6", help="comma-separated sweep counts")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--against", help="another checkout's src/ to compare with (run first in each pair)")
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--json", help="also write every number to this file")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.data_dir, args.threads)))
        return

    sides = ([("other", args.against)] if args.against else []) + [("this", None)]
    rows = {}
    for sweeps in [int(item) for item in args.sweeps.split(",")]:
        for _ in range(args.reps):
            for label, src in sides:
                result = run_side(src, sweeps, args)
                rows.setdefault((label, sweeps), []).append(result)
                print(f"{label:5s} ({result['source']}) sweeps={sweeps}: workers {result['workers_s']:.2f} s, "
                      f"trials {result['trials_s']:.2f} s, outside {result['outside_s']:.2f} s", flush=True)
    print("\nmedian outside-trial seconds")
    for sweeps in sorted({key[1] for key in rows}):
        medians = {label: statistics.median(r["outside_s"] for r in rows[(label, sweeps)]) for label, _ in sides}
        line = "  ".join(f"{label} {value:.2f}" for label, value in medians.items())
        if args.against:
            line += f"  saved {medians['other'] - medians['this']:.2f} s"
        print(f"  sweeps={sweeps}: {line}")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{label} sweeps={sweeps}": runs for (label, sweeps), runs in rows.items()},
                                              indent=1))


if __name__ == "__main__":
    main()
