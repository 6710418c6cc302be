"""Sweep benchmark (issue 6): the same LoRA designs trained by a plain peft + HF Trainer loop and by ``peftspace sweep``.

    .venv/bin/python benchmarks/sweep.py --workers 1,2 --schedule score_validation=false   # the README's run
    .venv/bin/python benchmarks/sweep.py --ablation      # also each speed-up turned off in turn (1 worker)
    .venv/bin/python benchmarks/sweep.py --steps 5 --designs 2 --workers 1,2 --json out.json   # a quick check
    ... --schedule precision=fp32 --schedule bucket_window=0     # our side without bf16 and bucketing
    ... --device cuda --workers auto   # on the GPU(s): our workers pinned one per GPU; Trainer in bf16 on the GPU

The designs are LoRA-only (strategies fixed to L) with per-layer ranks that differ, drawn from one
space with one seed; the table prints each design's ranks per layer. Both sides train SST-2 (the
train split peftspace uses, validation carved out) for the same steps, batch size, learning rate,
warmup and clipping, and score the 872 GLUE dev examples. The baseline is the loop users write today:
a fresh pretrained model per trial, HF peft ``LoraConfig`` with a per-layer ``rank_pattern``, and
``Trainer``. Timings are end to end (data, tokenization, model loads, training, evaluation) and come
from one run on a shared machine: they are noisy, so compare ratios from the same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

import peftspace
from peftspace.design import Design
from peftspace.design.space import DesignSpace, sample
from peftspace.families import backbone_spec
from peftspace.models import load_config, resolve_model_path

MODEL, TASK = "minilm", "sst2"
# Strategies fixed to L; grouping, allocation and the tuned groups vary. With every group tuned an
# all-LoRA plan depends on the allocation alone (3 distinct rank patterns on MiniLM's 6 layers), so
# the tuned groups vary too: seed 0 gives 6 designs with 6 different per-layer rank patterns.
SPACE = DesignSpace("lora-only", groupings=("spindle", "increasing", "uniform"),
                    allocations=("increasing", "decreasing", "uniform"), tuned="any", subsets=("L",))
PROJECTIONS = {"q": "query", "v": "value"}  # peftspace's LoRA targets -> BERT's module names, as peft sees them


def layer_ranks(config, design: Design) -> dict[int, int]:
    """Layer index -> LoRA rank, from peftspace's plan (the same numbers ``apply`` builds)."""
    return {layer.index: layer.sizes["L"] for layer in peftspace.plan(config, design).layers}


def lora_config(config, design: Design):
    """The design as HF peft writes it: target only the tuned layers' q/v, each with its own rank."""
    from peft import LoraConfig

    options = design.options
    ranks = {f"layer.{i}.attention.self.{PROJECTIONS[t]}": r for i, r in layer_ranks(config, design).items()
             for t in options.lora_targets}
    default = Counter(ranks.values()).most_common(1)[0][0]
    # Same scaling as peftspace (alpha/r, or alpha/sqrt(r) for rslora) and the same init (A Kaiming, B zero).
    return LoraConfig(task_type="SEQ_CLS", r=default, lora_alpha=options.lora_alpha, lora_dropout=options.lora_dropout,
                      use_rslora=options.lora_scaling == "rslora", target_modules=sorted(ranks),
                      rank_pattern={name: r for name, r in ranks.items() if r != default})


def run_baseline(designs: list[Design], args, workdir: Path) -> dict:
    """A user's sequential loop: tokenize once, then per design a fresh model, peft, Trainer, evaluate."""
    import numpy as np
    import torch
    from peft import get_peft_model
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, PrinterCallback,
                              Trainer, TrainingArguments, set_seed)

    from peftspace.tasks import load_task

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    path, config = resolve_model_path(MODEL), load_config(MODEL)
    data = load_task(TASK, args.data_dir, seed=args.seed)  # peftspace's splits: train minus validation, GLUE dev as test
    tokenizer = AutoTokenizer.from_pretrained(path)

    def tokenized(examples):  # what ``datasets.map(tokenize, batched=True)`` gives, without the datasets package
        encoded = tokenizer([e.texts[0] for e in examples], truncation=True, max_length=args.max_length)
        return [{**{k: v[i] for k, v in encoded.items()}, "labels": e.label} for i, e in enumerate(examples)]

    train, dev = tokenized(data.train), tokenized(data.test)
    shared = time.perf_counter() - started
    rows = []
    for i, design in enumerate(designs):
        begin = time.perf_counter()
        set_seed(args.seed + i)  # design i trains with seed + i, as in a sweep
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(data.spec.labels))
        model = get_peft_model(model, lora_config(config, design))
        lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n and p.requires_grad)
        assert lora == peftspace.plan(config, design).total, f"peft built {lora} LoRA parameters, the plan says otherwise"
        cuda = args.device == "cuda"  # the GPU's peer: Trainer in bf16 (fp16 where the GPU lacks bf16) with length grouping
        mixed = {"bf16": torch.cuda.is_bf16_supported(), "fp16": not torch.cuda.is_bf16_supported(),
                 "train_sampling_strategy": "group_by_length"} if cuda else {"use_cpu": True}
        training = TrainingArguments(
            **mixed, output_dir=str(workdir / "trainer"), max_steps=args.steps, per_device_train_batch_size=32,
            per_device_eval_batch_size=64, learning_rate=1e-3, lr_scheduler_type="linear", max_grad_norm=1.0,
            # peftspace's int(warmup_ratio * steps) (a ratio < 1 would round up); HF's ramp starts at lr 0, ours one step in
            warmup_steps=int(0.06 * args.steps),
            seed=args.seed + i, report_to=[], save_strategy="no", disable_tqdm=True, dataloader_pin_memory=False)
        trainer = Trainer(model=model, args=training, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer))
        trainer.remove_callback(PrinterCallback)  # its end-of-training dict would split the table; train_s has the time
        loaded = time.perf_counter()
        trainer.train()
        trained = time.perf_counter()
        output = trainer.predict(dev)
        accuracy = 100.0 * float(np.mean(output.predictions.argmax(-1) == output.label_ids))
        end = time.perf_counter()
        rows.append({"accuracy": accuracy, "seconds": end - begin, "load_s": loaded - begin, "train_s": trained - loaded,
                     "eval_s": end - trained})
    return {"rows": rows, "shared_s": shared, "total_s": time.perf_counter() - started}


def run_ours(designs: list[Design], args, workers: int | str, workdir: Path, changes: dict | None = None, label: str = "") -> dict:
    """``run_sweep`` on a fresh SQLite store: spawned workers, each loading the backbone and data once."""
    import optuna
    from optuna.trial import TrialState

    from peftspace.sweep import run_sweep
    from peftspace.schedule import Schedule

    schedule = Schedule.from_dict({"max_steps": args.steps, "batch_size": 32, "max_length": args.max_length,
                                   "learning_rate": 1e-3, "max_eval_examples": None, **args.schedule, **(changes or {})})
    url = f"sqlite:///{workdir / f'workers{workers}{label}.db'}"
    started = time.perf_counter()
    status = run_sweep(SPACE, MODEL, [TASK], samples=len(designs), seed=args.seed, workers=workers, storage=url,
                       schedule=schedule, data_dir=args.data_dir, device=args.device,
                       threads=None if workers == "auto" else max(1, args.threads // workers))
    total = time.perf_counter() - started
    if status["failures"]:
        raise SystemExit(f"peftspace sweep failed: {status['failures']}")
    trials = optuna.load_study(study_name=status["study"], storage=url).get_trials(states=(TrialState.COMPLETE,))
    rows = [None] * len(designs)
    for trial in trials:
        attrs = trial.user_attrs
        index = attrs["design_index"]
        # The sweep drew its designs from the same space and seed: they must be the ones the baseline trained.
        assert Design.from_dict(attrs["design"]) == designs[index], f"sweep design {index} differs from the baseline's"
        record = attrs["tasks"][TASK]
        rows[index] = {"accuracy": record["metrics"]["test"]["accuracy"],
                       "validation_accuracy": record["metrics"].get("validation", {}).get("accuracy"),
                       "seconds": attrs["wall_time_s"], "precision": record.get("precision", "fp32"), "worker": attrs["worker"]}
    # Outside trials: spawning, imports, backbone and data loads, the store. Workers run in parallel,
    # so it is measured against the busiest worker's trials.
    busiest = max(sum(r["seconds"] for r in rows if r["worker"] == w) for w in {r["worker"] for r in rows})
    return {"workers": workers, "rows": rows, "schedule": schedule.__dict__, "total_s": total, "overhead_s": total - busiest}


def print_table(designs, config, baseline, ours_runs) -> None:
    layers = backbone_spec(config).num_layers
    head = f"{'#':>2}  {'ranks, layers 0..' + str(layers - 1):<24} {'peft acc':>8} {'peft s':>7}"
    for ours in ours_runs:
        head += f" {'ours acc':>8} {'ours s':>7} {'diff':>6}" + (f"  (workers={ours['workers']})" if len(ours_runs) > 1 else "")
    print(head)
    for i, design in enumerate(designs):
        ranks = layer_ranks(config, design)
        line = f"{i:>2}  {' '.join(str(ranks.get(k, '-')) for k in range(layers)):<24} " \
               f"{baseline['rows'][i]['accuracy']:>8.2f} {baseline['rows'][i]['seconds']:>7.1f}"
        for ours in ours_runs:
            row = ours["rows"][i]
            line += f" {row['accuracy']:>8.2f} {row['seconds']:>7.1f} {row['accuracy'] - baseline['rows'][i]['accuracy']:>+6.2f}"
        print(line)
    shared = f"{'':>2}  {'outside trials':<24} {'':>8} {baseline['shared_s']:>7.1f}"
    totals = f"{'':>2}  {'total wall time':<24} {'':>8} {baseline['total_s']:>7.1f}"
    for ours in ours_runs:
        shared += f" {'':>8} {ours['overhead_s']:>7.1f} {'':>6}"
        totals += f" {'':>8} {ours['total_s']:>7.1f} {'':>6}"
    print(shared + "\n" + totals)
    for ours in ours_runs:
        diffs = [o["accuracy"] - b["accuracy"] for o, b in zip(ours["rows"], baseline["rows"])]
        print(f"workers={ours['workers']}: wall-time ratio peft/ours {baseline['total_s'] / ours['total_s']:.2f}x, "
              f"mean accuracy diff ours-peft {sum(diffs) / len(diffs):+.2f} points, "
              f"precision {sorted({r['precision'] for r in ours['rows']})}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--designs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads of the baseline; split evenly among the sweep's workers")
    parser.add_argument("--workers", default="1", help="comma-separated worker counts to run the sweep with, e.g. 1,2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--schedule", action="append", default=[], metavar="KEY=VALUE",
                        help="extra Schedule field for our side, e.g. precision=fp32 (JSON values)")
    parser.add_argument("--ablation", action="store_true",
                        help="also run our side (1 worker) with each speed-up turned off in turn, and all of them off")
    parser.add_argument("--json", help="also write every number to this file")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where both sides train (cuda: Trainer in bf16 with length grouping; --workers auto: one per GPU)")
    args = parser.parse_args()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.exit(2, "--device cuda: torch sees no CUDA GPU on this machine\n")
    args.workers = [w if w == "auto" else int(w) for w in args.workers.split(",")]
    args.schedule = dict(_key_value(item) for item in args.schedule)
    return args


def _key_value(item: str):
    key, _, value = item.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare word such as fp32


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


# What each speed-up contributes: our side with it turned off (the others on), then with all of them off.
ABLATIONS = {"precision=fp32": {"precision": "fp32"}, "bucket_window=0": {"bucket_window": 0},
             "frozen_bottom=off": {"frozen_bottom": "off"}, "fast_dropout=false": {"fast_dropout": False},
             "all four off": {"precision": "fp32", "bucket_window": 0, "frozen_bottom": "off", "fast_dropout": False}}


def print_ablation(baseline, reference, ablation) -> None:
    print("\nour side (1 worker) with one speed-up off; the last row has all four off, leaving the worker's reuse of backbone and data")
    print(f"{'our side':<22} {'total s':>8} {'/ all on':>9} {'peft/ours':>10} {'mean acc diff':>14}")
    for name, run in [("all on", reference)] + list(ablation.items()):
        diffs = [o["accuracy"] - b["accuracy"] for o, b in zip(run["rows"], baseline["rows"])]
        print(f"{name:<22} {run['total_s']:>8.1f} {run['total_s'] / reference['total_s']:>8.2f}x "
              f"{baseline['total_s'] / run['total_s']:>9.2f}x {sum(diffs) / len(diffs):>+14.2f}")


def main() -> None:
    import logging
    import warnings

    import optuna
    from transformers.utils import logging as hf_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Keep the output to the table: per-model load reports, progress bars, deprecation notes, study logs.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    optuna.logging.set_verbosity(logging.WARNING)
    args = parse_args()
    config = load_config(MODEL)
    designs = sample(SPACE, args.designs, args.seed, backbone_spec(config))
    print(f"sweep benchmark: {len(designs)} LoRA designs x {args.steps} steps, {MODEL} on {TASK}; "
          f"{cpu_name()}, {os.cpu_count()} CPUs, {args.threads} threads; shared machine, timings are noisy "
          f"(load average {os.getloadavg()[0]:.1f} at the start)", flush=True)
    with tempfile.TemporaryDirectory(prefix="peftspace-bench-") as tmp:
        baseline = run_baseline(designs, args, Path(tmp))
        ours_runs = [run_ours(designs, args, workers, Path(tmp)) for workers in args.workers]
        ablation = {name: run_ours(designs, args, 1, Path(tmp), changes, f"-{i}")
                    for i, (name, changes) in enumerate(ABLATIONS.items())} if args.ablation else {}
    print_table(designs, config, baseline, ours_runs)
    if ablation:
        print_ablation(baseline, next(run for run in ours_runs if run["workers"] == 1), ablation)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    mean = {k: sum(r[k] for r in baseline["rows"]) / len(designs) for k in ("load_s", "train_s", "eval_s")}
    print(f"peft per trial (mean): model + peft {mean['load_s']:.1f} s, train {mean['train_s']:.1f} s, predict {mean['eval_s']:.1f} s; "
          "outside trials: reading and tokenizing SST-2 once")
    scored = ("GLUE dev (872) and the validation split carved from train (1,000), which the peft loop does not score"
              if args.schedule.get("score_validation", True) else "GLUE dev (872), as the peft loop does")
    print(f"ours per trial: copy of the backbone, train, and scoring {scored}; outside trials: workers' start, backbone, "
          "data, store")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": {k: v for k, v in vars(args).items()}, "space": SPACE.to_dict(),
            "designs": [d.to_dict() for d in designs], "ranks": [layer_ranks(config, d) for d in designs],
            "baseline": baseline, "ours": ours_runs, "ablation": ablation}, indent=2) + "\n")


if __name__ == "__main__":
    main()
