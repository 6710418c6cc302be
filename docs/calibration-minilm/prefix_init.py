"""Prefixes started at random vs from the backbone's keys and values of random vocabulary tokens, on SST-2.

Runs at commit d747e40 only: ``Schedule.prefix_init`` was removed after this measurement (it did not help;
see README.md here). ``git checkout d747e40 -- src`` in a scratch clone to rerun it.

    HF_HUB_OFFLINE=1 .venv/bin/python docs/calibration-minilm/prefix_init.py --rate RATE --out docs/calibration-minilm/prefix-init

The ``prefix`` preset at ``--rate`` (the head at the base 1e-3, as calibrate trains it), the trial
schedule of this folder's README, seeds 0 and 1, one torch thread; each record appended to
OUT/trials.jsonl (a rerun skips finished ones).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from peftspace.calibrate import run_schedule
from peftspace.schedule import Schedule
from peftspace.trial import TrialCache, run_trial


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--inits", default="random,tokens")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "trials.jsonl"
    done = {r["key"] for r in map(json.loads, path.read_text().splitlines())} if path.is_file() else set()
    base = Schedule(max_steps=100, batch_size=16, max_length=64, learning_rate=1e-3)
    cache = TrialCache()
    for init in args.inits.split(","):
        schedule = Schedule(**{**run_schedule(base, "P", args.rate).__dict__, "prefix_init": init})
        for seed in map(int, args.seeds.split(",")):
            key = f"prefix|sst2|{args.rate!r}|{init}|{seed}"
            if key in done:
                continue
            record = run_trial("prefix", "minilm", "sst2", schedule, seed, data_dir=args.data_dir, cache=cache)
            record["key"], record["prefix_init"] = key, init
            with path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"{key}: {record['status']} validation {record.get('validation_score')} test {record.get('score')} "
                  f"wall {record['wall_time_s']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
