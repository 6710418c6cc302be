"""Which GLUE tasks MiniLM learns in a short trial schedule, against each task's constant baseline.

    HF_HUB_OFFLINE=1 .venv/bin/python docs/calibration-minilm/learnability.py --out docs/calibration-minilm/learnability

Trains the ``lora`` preset (one torch thread) on each task at each rate, appending each record to
OUT/trials.jsonl (a rerun skips finished trials), and writes OUT/baselines.json: the score of
predicting the training split's majority class (classification) or its mean label (regression:
a constant prediction has no correlation, scored 0) on the validation and test splits.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from peftspace.schedule import Schedule
from peftspace.tasks import compute_metrics, main_score
from peftspace.trial import TrialCache, run_trial


def baseline(data) -> dict:
    labels = [e.label for e in data.train]
    if data.spec.kind == "regression":
        constant = float(np.mean(labels))
        scores = {split: {m: 0.0 for m in data.spec.metrics} for split in ("validation", "test")}  # correlation of a constant
        return {"prediction": constant, "validation": scores["validation"], "test": scores["test"],
                "validation_score": 0.0, "score": 0.0}
    constant = Counter(labels).most_common(1)[0][0]
    found = {"prediction": constant}
    for split in ("validation", "test"):
        examples = getattr(data, split)
        metrics = compute_metrics(data.spec, [constant] * len(examples), [e.label for e in examples])
        found[split] = metrics
        found["validation_score" if split == "validation" else "score"] = main_score(data.spec, metrics)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default="sst2,stsb,cola,mrpc,rte")
    parser.add_argument("--rates", default="1e-3,3e-3")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--max-eval-examples", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--test-only", action="store_true", help="score the test split only, as sweeps do")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "trials.jsonl"
    done = {r["key"] for r in map(json.loads, path.read_text().splitlines())} if path.is_file() else set()
    cache, baselines = TrialCache(), {}
    for task in args.tasks.split(","):
        data = cache.task(task, args.data_dir, 0)
        baselines[task] = baseline(data)
        for rate in map(float, args.rates.split(",")):
            key = f"lora|{task}|{rate}"
            if key in done:
                continue
            schedule = Schedule(max_steps=args.steps, batch_size=args.batch_size, max_length=args.max_length,
                                learning_rate=rate, max_eval_examples=args.max_eval_examples,
                                score_validation=not args.test_only)
            marks = {"start": time.perf_counter()}

            def progress(step, total, loss, marks=marks):
                if step == total:
                    marks["trained"] = time.perf_counter()

            record = run_trial("lora", "minilm", data, schedule, seed=0, cache=cache, progress=progress)
            marks["end"] = time.perf_counter()
            record["key"], record["threads"] = key, args.threads
            if "trained" in marks:  # setup and training, then scoring validation and test
                record["train_s"] = round(marks["trained"] - marks["start"], 2)
                record["score_s"] = round(marks["end"] - marks["trained"], 2)
            with path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            record["load_average"] = os.getloadavg()
            print(f"{key}: {record['status']} validation {record.get('validation_score')} test {record.get('score')} "
                  f"baseline {baselines[task]['score']:.2f} wall {record['wall_time_s']:.1f} s (train {record.get('train_s')} s)", flush=True)
    (args.out / "baselines.json").write_text(json.dumps(baselines, indent=2) + "\n")


if __name__ == "__main__":
    main()
