"""Frozen-bottom reuse benchmark (issue 6): one design on MiniLM's top blocks, ``frozen_bottom`` off vs train
(training steps and scoring served from the cache).

    flock /tmp/peftspace-bench.lock .venv/bin/python benchmarks/frozen_bottom.py
    .venv/bin/python benchmarks/frozen_bottom.py --examples 64 --eval-examples 32   # a quick check

All trials share one ``TrialCache`` and run in this order: ``off`` twice (the first loads the
backbone and encodes the examples, so the second is timed warm), then ``train`` on a cold store
(epoch 1 computes and stores the bottom, epoch 2 and evaluation read it back), then ``train``
again with the store warm (a sweep worker's next design on the same task). Per-epoch times come
from the progress callback; "eval" is validation + test after training. One run on a shared
machine: timings are noisy, compare ratios from the same run only. Prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import torch

from peftspace.design import Design
from peftspace.tasks import load_task
from peftspace.trial import Schedule, TrialCache, run_trial


def timed_trial(design, data, schedule, cache) -> dict:
    steps_per_epoch = math.ceil(schedule.max_train_examples / schedule.batch_size)
    marks, started = {}, time.perf_counter()

    def progress(step, total, loss):
        if step % steps_per_epoch == 0:
            marks[step // steps_per_epoch] = time.perf_counter()

    record = run_trial(design, "minilm", data, schedule, seed=0, cache=cache, progress=progress)
    ended = time.perf_counter()
    assert record["status"] == "ok", record["reason"]
    epochs = [marks[e] - marks.get(e - 1, started) for e in sorted(marks)]
    return {"wall": ended - started, "epochs": epochs, "eval": ended - marks[max(marks)], "record": record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--eval-examples", type=int, default=256, help="per split (validation and test)")
    parser.add_argument("--groups", type=int, default=2, help="MiniLM's 6 blocks in this many groups; the top one is tuned")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    design = Design(grouping="uniform", num_groups=args.groups, tuned_groups=(args.groups - 1,), strategies=("L",), name="top-lora")
    schedule = Schedule(max_steps=None, epochs=2, batch_size=32, max_length=64, max_train_examples=args.examples,
                        max_eval_examples=args.eval_examples, learning_rate=1e-3, log_every=1, frozen_bottom="off")
    data = load_task(args.task, args.data_dir, seed=0)
    cache = TrialCache()
    timed_trial(design, data, schedule, cache)  # loads the backbone, encodes the examples
    runs = {"off": timed_trial(design, data, schedule, cache)}
    cached = replace(schedule, frozen_bottom="train")
    runs["train, cold store"] = timed_trial(design, data, cached, cache)
    runs["train, warm store"] = timed_trial(design, data, cached, cache)

    print(f"{args.task}, {args.examples} training examples x 2 epochs, batch 32, max_length 64, "
          f"{args.eval_examples} validation + {args.eval_examples} test examples, {args.threads} torch thread(s), "
          f"precision {runs['off']['record']['precision']}")
    layers = runs["train, cold store"]["record"]["frozen_bottom"]["layers"]
    print(f"design: LoRA on the top {6 - layers} of 6 blocks; the cache serves the embeddings and blocks 0..{layers - 1}")
    base = runs["off"]
    print(f"{'':20} {'wall s':>8} {'epoch 1':>8} {'epoch 2':>8} {'eval':>8} {'x wall':>7} {'x ep.2':>7} {'x eval':>7}  hits/misses")
    for name, run in runs.items():
        served = run["record"]["frozen_bottom"]
        counts = "-" if served is None else f"{served['hits']}/{served['misses']}"
        print(f"{name:20} {run['wall']:8.2f} {run['epochs'][0]:8.2f} {run['epochs'][1]:8.2f} {run['eval']:8.2f} "
              f"{base['wall'] / run['wall']:7.2f} {base['epochs'][1] / run['epochs'][1]:7.2f} {base['eval'] / run['eval']:7.2f}  {counts}")
    print(f"stored: {len(cache.bottom_states)} examples, {cache.bottom_states.used_bytes / 2**20:.1f} MiB")
    losses = {name: [loss for _, loss in run["record"]["losses"]] for name, run in runs.items()}
    gap = max(abs(a - b) for a, b in zip(losses["train, cold store"], losses["train, warm store"], strict=True))
    print(f"largest loss difference, cold vs warm store: {gap:.2e}; test accuracy: "
          + ", ".join(f"{name} {run['record']['metrics']['test']}" for name, run in runs.items()))


if __name__ == "__main__":
    main()
