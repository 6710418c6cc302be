"""Sweep benchmark (issues 6, 12): the same LoRA designs trained by peft + HF Trainer and by ``peftspace sweep``.

    .venv/bin/python benchmarks/sweep.py --workers 1,2            # the README's run: ours vs the strong peer
    .venv/bin/python benchmarks/sweep.py --workers 1,2 --weak-peer   # also the weak peer (fp32, no length grouping)
    .venv/bin/python benchmarks/sweep.py --ablation      # also our side (1 worker) with one speed-up changed per row
    .venv/bin/python benchmarks/sweep.py --steps 3 --designs 2 --workers 1 --json out.json   # a quick check
    ... --schedule precision=fp32 --schedule bucket_window=0     # our side without bf16 and bucketing
    ... --device cuda --workers auto   # on the GPU(s): our workers pinned one per GPU; Trainer in bf16 on the GPU

The designs are LoRA-only (strategies fixed to L) with per-layer ranks that differ, drawn from one
space with one seed; the table prints each design's ranks per layer. Both sides do the same work:
SST-2 (the train split peftspace uses, validation carved out) truncated at the same max length, the
same steps, batch size, learning rate, warmup, clipping and weight decay (the peers' TrainingArguments
are read off our schedule), the same dropout (the checkpoint's hidden, attention and classifier
dropout, the designs' LoRA dropout; checked on the peer's model), and both score the 872 GLUE dev
examples only (``score_validation`` is false here unless ``--schedule score_validation=true``).

The baseline is the strong peer, the loop a careful HF user writes: a fresh pretrained model per
trial, HF peft ``LoraConfig`` with a per-layer ``rank_pattern``, and ``Trainer`` with bf16 autocast
(where the CPU does bf16 natively, as our ``precision=auto``; on a GPU bf16, or fp16 without bf16),
length-grouped training batches (``LengthGroupedSampler``) and the dev set scored in length order.
``--weak-peer`` adds the loop as most examples write it (fp32, random batches, dev in file order).
Timings are end to end (data, tokenization, model loads, training, evaluation) and come from one
run on a shared machine: they are noisy, so compare ratios from the same run only.
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


def peer_arguments(strong: bool, device: str) -> dict:
    """The TrainingArguments that make a peer strong (bf16 autocast, length-grouped batches) or weak (neither)."""
    import dataclasses

    import torch
    from transformers import TrainingArguments

    from peftspace.precision import native_bf16

    place = {"use_cpu": True} if device == "cpu" else {}
    if not strong:
        return place
    if device == "cuda":
        mixed = {"bf16": True} if native_bf16("cuda") else {"fp16": True}  # as our "auto": emulated bf16 is not bf16
    else:  # Trainer takes bf16 with use_cpu (CPU autocast); where the CPU lacks native bf16, fp32, as our "auto"
        mixed = {"bf16": True} if native_bf16("cpu") else {}
    # transformers 5 names the sampler ``train_sampling_strategy``; 4.x had ``group_by_length=True``.
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    grouping = {"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in names else {"group_by_length": True}
    return {**place, **mixed, **grouping}


def dropout_of(config, designs: list[Design]) -> dict:
    """The dropout probabilities both sides train with: the checkpoint's, and the designs' LoRA dropout."""
    classifier = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
    return {"hidden": config.hidden_dropout_prob, "attention": config.attention_probs_dropout_prob, "classifier": classifier,
            "lora": sorted({d.options.lora_dropout for d in designs})}


def run_baseline(designs: list[Design], args, schedule, workdir: Path, strong: bool = True) -> dict:
    """A user's sequential loop: tokenize once, then per design a fresh model, peft, Trainer, evaluate."""
    import numpy as np
    import torch
    from peft import get_peft_model
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, PrinterCallback,
                              Trainer, TrainingArguments, set_seed)

    from peftspace.formats import make_format
    from peftspace.tasks import load_task

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    path, config = resolve_model_path(MODEL), load_config(MODEL)
    data = load_task(TASK, args.data_dir, seed=args.seed)  # peftspace's splits: train minus validation, GLUE dev as test
    tokenizer = AutoTokenizer.from_pretrained(path)

    def tokenized(examples):  # what ``datasets.map(tokenize, batched=True)`` gives, without the datasets package
        encoded = tokenizer([e.texts[0] for e in examples], truncation=True, max_length=schedule.max_length)
        return [{**{k: v[i] for k, v in encoded.items()}, "labels": e.label} for i, e in enumerate(examples)]

    train, dev = tokenized(data.train), tokenized(data.test)
    ours = make_format("head", data.spec, tokenizer, schedule.max_length)  # the same tokens as our side, truncation included
    assert all(ours.encode(e) == {k: v for k, v in row.items() if k != "labels"}
               for e, row in zip(data.train[:256] + data.test, train[:256] + dev)), "the peer's tokens differ from ours"
    if strong:  # scored in length order, as our side does: fewer pad tokens, the same predictions
        dev = sorted(dev, key=lambda row: len(row["input_ids"]))
    dropout = dropout_of(config, designs)
    setup = peer_arguments(strong, args.device)
    shared = time.perf_counter() - started
    rows = []
    for i, design in enumerate(designs):
        begin = time.perf_counter()
        set_seed(args.seed + i)  # design i trains with seed + i, as in a sweep
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(data.spec.labels))
        model = get_peft_model(model, lora_config(config, design))
        lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n and p.requires_grad)
        assert lora == peftspace.plan(config, design).total, f"peft built {lora} LoRA parameters, the plan says otherwise"
        probabilities = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
        expected = {dropout["hidden"], dropout["attention"], dropout["classifier"]} | ({design.options.lora_dropout} - {0.0})
        assert probabilities == expected, f"the peer's model drops out with {probabilities}, our side with {expected}"
        training = TrainingArguments(
            **setup, output_dir=str(workdir / "trainer"), max_steps=schedule.max_steps,
            per_device_train_batch_size=schedule.batch_size, per_device_eval_batch_size=schedule.eval_batch_size,
            learning_rate=schedule.learning_rate, lr_scheduler_type="linear", max_grad_norm=schedule.max_grad_norm,
            weight_decay=schedule.weight_decay,
            # peftspace's int(warmup_ratio * steps) (a ratio < 1 would round up); HF's ramp starts at lr 0, ours one step in
            warmup_steps=int(schedule.warmup_ratio * schedule.max_steps),
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
                     "eval_s": end - trained, "mixed_precision": trainer.accelerator.mixed_precision})
    return {"strong": strong, "arguments": setup, "dropout": dropout, "rows": rows, "shared_s": shared,
            "total_s": time.perf_counter() - started}


def lowest_layer(config, design: Design) -> int:
    """The lowest layer a design puts LoRA on: autograd's backward stops there, on every side."""
    return min(layer_ranks(config, design))


def run_floor(designs: list[Design], args, schedule) -> dict:
    """The least any loop can spend on this sweep's steps: no design, no optimizer, nothing but the compute.

    One process, the model loaded once. Per design: our batches (the trial's seed, bucketing and padding),
    forward under our precision with fast dropout and backward through the frozen backbone down to the
    design's lowest LoRA layer (where the peers' and our backward stop too), without weight gradients;
    then the GLUE dev set forward in length order, as both sides score it. LoRA's own compute (rank <= 74
    on 384 wide, a few percent) is left out, so the floor is below what either side can do. ``bottom_s``
    is the forward of the embeddings and the blocks below that layer: the most that sharing the frozen
    bottom between designs that see the same batches could save.
    """
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification

    from peftspace.batching import batch_stream
    from peftspace.dropout import use_fast_dropout
    from peftspace.formats import make_format
    from peftspace.models import load_backbone, load_tokenizer
    from peftspace.precision import autocast, resolve_precision
    from peftspace.tasks import load_task

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    config = load_config(MODEL)
    data = load_task(TASK, args.data_dir, seed=args.seed)
    fmt = make_format("head", data.spec, load_tokenizer(MODEL), schedule.max_length)
    train = [fmt.encode(e) for e in data.train]
    dev_order = sorted(range(len(data.test)), key=lambda i: len(fmt.encode(data.test[i])["input_ids"]))
    dev = [fmt.encode(data.test[i]) for i in dev_order]
    model = load_backbone(MODEL, AutoModelForSequenceClassification, num_labels=len(data.spec.labels)).to(args.device)
    model.requires_grad_(False)
    use_fast_dropout(model)
    precision = resolve_precision(schedule.precision, args.device)
    base, blocks = model.bert, model.bert.encoder.layer
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    clock = {"start": 0.0, "bottom": 0.0}

    def bottom_starts(module, inputs):
        sync()
        clock["start"] = time.perf_counter()

    def bottom_ends(module, inputs, output):
        sync()
        clock["bottom"] += time.perf_counter() - clock["start"]

    def needs_grad(module, inputs, kwargs):  # the states entering the lowest LoRA layer: backward stops below them
        hidden = inputs[0] if inputs else kwargs["hidden_states"]
        hidden.requires_grad_(True)

    def tracked(index):  # which blocks' outputs autograd tracks in a design's first step: its backward's reach
        def hook(module, inputs, output):
            states = output[0] if isinstance(output, tuple) else output
            if states.requires_grad:
                seen.add(index)
        return hook

    base.embeddings.register_forward_pre_hook(bottom_starts)
    shared = time.perf_counter() - started
    rows = []
    for i, design in enumerate(designs):
        lowest = lowest_layer(config, design)
        hooks = [blocks[lowest].register_forward_pre_hook(needs_grad, with_kwargs=True),
                 (blocks[lowest - 1] if lowest else base.embeddings).register_forward_hook(bottom_ends)]
        clock["bottom"] = 0.0
        generator = torch.Generator().manual_seed(args.seed + i)  # design i's trial seed, as the sweep gives it
        stream = batch_stream(len(train), schedule.batch_size, schedule.bucket_window, generator,
                              lambda chunk: [len(train[j]["input_ids"]) for j in chunk])
        seen: set[int] = set()
        watching = [block.register_forward_hook(tracked(b)) for b, block in enumerate(blocks)]
        begin = time.perf_counter()
        model.train()
        for step in range(schedule.max_steps):
            if step == 1:
                for hook in watching:
                    hook.remove()
            picked = next(stream)
            batch = fmt.collate([train[j] for j in picked], [data.train[j] for j in picked]).to(args.device)
            with autocast(precision, args.device):
                loss = model(**batch.inputs).loss
            loss.backward()
        sync()
        trained = time.perf_counter()
        for hook in watching:  # (a one-step run leaves them on until here)
            hook.remove()
        bottom = clock["bottom"]
        model.eval()
        predictions = []
        with torch.no_grad(), autocast(precision, args.device):
            for start in range(0, len(dev), schedule.eval_batch_size):
                chunk = dev_order[start:start + schedule.eval_batch_size]
                batch = fmt.collate(dev[start:start + schedule.eval_batch_size], [data.test[j] for j in chunk]).to(args.device)
                predictions += model(**{k: v for k, v in batch.inputs.items() if k != "labels"}).logits.argmax(-1).tolist()
        sync()
        end = time.perf_counter()
        for hook in hooks:
            hook.remove()
        assert len(predictions) == len(data.test) and np.isfinite(loss.item())
        rows.append({"lowest_layer": lowest, "tracked_blocks": sorted(seen), "seconds": end - begin, "train_s": trained - begin, "score_s": end - trained,
                     "bottom_s": bottom})
    return {"precision": precision, "rows": rows, "shared_s": shared, "total_s": time.perf_counter() - started}


def run_floor_apart(designs: list[Design], args, schedule) -> dict:
    """``run_floor`` in a fresh process: no kernel the peers' run warmed up in this one is ready for it."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(run_floor, (designs, args, schedule))


def our_schedule(args, changes: dict | None = None):
    """Our side's schedule: the benchmark's numbers, then --schedule, then an ablation row's ``changes``.

    The peers read their steps, batch sizes, learning rate, warmup, clipping, weight decay and max length off it.
    """
    from peftspace.schedule import Schedule

    return Schedule.from_dict({"max_steps": args.steps, "batch_size": 32, "eval_batch_size": 64, "max_length": args.max_length,
                               "learning_rate": 1e-3, "max_eval_examples": None, "score_validation": False,
                               **args.schedule, **(changes or {})})


def run_ours(designs: list[Design], args, workers: int | str, workdir: Path, changes: dict | None = None, label: str = "") -> dict:
    """``run_sweep`` on a fresh SQLite store: spawned workers, each loading the backbone and data once."""
    import optuna
    from optuna.trial import TrialState

    from peftspace.sweep import run_sweep

    schedule = our_schedule(args, changes)
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


def print_table(designs, config, peers: list[dict], ours_runs) -> None:
    """Per design: each peer's and each of our runs' accuracy and seconds; then the ratios, strong peer first."""
    layers = backbone_spec(config).num_layers
    names = {True: "strong", False: "weak"}
    strong = peers[0]
    print(f"\n{cpu_name()}, {os.cpu_count()} CPUs; strong peer: Trainer with {strong['arguments']}, dev in length order"
          + (f"; weak peer: Trainer with {peers[1]['arguments']}" if len(peers) > 1 else ""))
    head = f"{'#':>2}  {'ranks, layers 0..' + str(layers - 1):<24}"
    for peer in peers:
        head += f" {names[peer['strong']] + ' acc':>10} {names[peer['strong']] + ' s':>8}"
    for ours in ours_runs:
        head += f" {'ours acc':>8} {'ours s':>7} {'diff':>6}" + (f"  (workers={ours['workers']})" if len(ours_runs) > 1 else "")
    print(head + "   (diff: ours - strong peer)")
    for i, design in enumerate(designs):
        ranks = layer_ranks(config, design)
        line = f"{i:>2}  {' '.join(str(ranks.get(k, '-')) for k in range(layers)):<24}"
        for peer in peers:
            line += f" {peer['rows'][i]['accuracy']:>10.2f} {peer['rows'][i]['seconds']:>8.1f}"
        for ours in ours_runs:
            row = ours["rows"][i]
            line += f" {row['accuracy']:>8.2f} {row['seconds']:>7.1f} {row['accuracy'] - strong['rows'][i]['accuracy']:>+6.2f}"
        print(line)
    shared = f"{'':>2}  {'outside trials':<24}" + "".join(f" {'':>10} {peer['shared_s']:>8.1f}" for peer in peers)
    totals = f"{'':>2}  {'total wall time':<24}" + "".join(f" {'':>10} {peer['total_s']:>8.1f}" for peer in peers)
    for ours in ours_runs:
        shared += f" {'':>8} {ours['overhead_s']:>7.1f} {'':>6}"
        totals += f" {'':>8} {ours['total_s']:>7.1f} {'':>6}"
    print(shared + "\n" + totals)
    for ours in ours_runs:
        print(f"workers={ours['workers']} (precision {sorted({r['precision'] for r in ours['rows']})}):")
        for peer in peers:
            print(f"  ours vs the {names[peer['strong']]} peer: wall time {names[peer['strong']]}/ours "
                  f"{peer['total_s'] / ours['total_s']:.2f}x, mean accuracy diff ours - {names[peer['strong']]} "
                  f"{mean_difference(ours, peer):+.2f} points")


def after_first(run: dict) -> float:
    """Seconds of a run's trials after the first: the first pays the process's one-time kernel warm-up."""
    return sum(row["seconds"] for row in run["rows"][1:])


def print_floor(floor: dict, peer: dict, ours: dict) -> None:
    """Per design the floor's seconds beside the strong peer's and ours; the ratios that bound any speed-up."""
    print(f"\nfloor: our batches through the frozen backbone ({floor['precision']}, fast dropout), backward down to each "
          "design's lowest LoRA layer, no weight gradients, no optimizer; then GLUE dev forward; one process, model "
          "loaded once")
    print(f"{'#':>2} {'lowest':>6} {'floor s':>8} {'train':>6} {'score':>6} {'bottom':>7} {'strong s':>9} {'ours s':>7}")
    for i, row in enumerate(floor["rows"]):
        print(f"{i:>2} {row['lowest_layer']:>6} {row['seconds']:>8.1f} {row['train_s']:>6.1f} {row['score_s']:>6.1f} "
              f"{row['bottom_s']:>7.1f} {peer['rows'][i]['seconds']:>9.1f} {ours['rows'][i]['seconds']:>7.1f}")
    trials = sum(row["seconds"] for row in floor["rows"])
    later = sum(row["seconds"] for row in floor["rows"][1:])
    bottom = sum(row["bottom_s"] for row in floor["rows"])
    print(f"trials, all: floor {trials:.1f} s; strong peer / floor {sum(r['seconds'] for r in peer['rows']) / trials:.2f}x, "
          f"ours / floor {sum(r['seconds'] for r in ours['rows']) / trials:.2f}x")
    if len(floor["rows"]) > 1:
        print(f"trials after the first: floor {later:.1f} s; strong peer / floor {after_first(peer) / later:.2f}x (the most "
              f"any loop doing these steps could gain on the peer), ours / floor {after_first(ours) / later:.2f}x, "
              f"strong peer / ours {after_first(peer) / after_first(ours):.2f}x")
    print(f"frozen bottoms (embeddings and blocks below each design's lowest LoRA layer, forward): {bottom:.1f} s of the "
          f"floor's {trials:.1f} s ({100 * bottom / trials:.0f}%): the most that sharing them between designs could save")


def peer_import_seconds() -> float:
    """The peer's imports timed in a fresh interpreter.

    They run in this process before the peer's clock starts, while each of our workers is a fresh process whose
    imports count in our outside-trial time: the difference is a bias against us, shown beside the table, not removed.
    """
    import subprocess
    import sys

    code = ("import time; start = time.perf_counter(); import torch, peft, transformers; "
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments; "
            "print(time.perf_counter() - start)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def mean_difference(run: dict, peer: dict) -> float:
    """Mean accuracy of ``run``'s designs minus ``peer``'s, in points."""
    diffs = [o["accuracy"] - b["accuracy"] for o, b in zip(run["rows"], peer["rows"], strict=True)]
    return sum(diffs) / len(diffs)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--designs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads of the peers; split evenly among the sweep's workers")
    parser.add_argument("--workers", default="1", help="comma-separated worker counts to run the sweep with, e.g. 1,2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=64, help="tokens per sentence at most, on both sides")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--schedule", action="append", default=[], metavar="KEY=VALUE",
                        help="extra Schedule field for our side, e.g. precision=fp32 (JSON values); the peers follow "
                             "its steps, batch sizes, learning rate, warmup, clipping, weight decay and max length")
    parser.add_argument("--weak-peer", action="store_true",
                        help="also run the weak peer: Trainer in fp32 with random batches, dev in file order")
    parser.add_argument("--ablation", action="store_true",
                        help="also run our side (1 worker) with one speed-up changed per row (see ABLATIONS)")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip the floor (the sweep's steps and scoring through the frozen backbone, nothing else)")
    parser.add_argument("--json", help="also write every number to this file")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where both sides train (cuda: Trainer in bf16 with length grouping; --workers auto: one per GPU)")
    args = parser.parse_args()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.exit(2, "--device cuda: torch sees no CUDA GPU on this machine\n")
    args.workers = [w if w == "auto" else int(w) for w in args.workers.split(",")]
    if args.ablation and 1 not in args.workers:
        args.workers.insert(0, 1)  # the ablation's reference: our default run on one worker
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


# What each speed-up contributes: each row changes one of them from our default run (the others as
# they are there): it turns one off that is on, or turns on frozen-bottom reuse, which is off by default.
ABLATIONS = [("bf16 off", {"precision": "fp32"}),
             ("length bucketing off", {"bucket_window": 0}),
             ("fast dropout off", {"fast_dropout": False}),
             ("frozen bottom on, when scoring", {"frozen_bottom": "eval"}),
             ("frozen bottom on, training too", {"frozen_bottom": "train"}),
             ("bf16, bucketing, fast dropout off", {"precision": "fp32", "bucket_window": 0, "fast_dropout": False})]


def ablation_rows(args) -> list[tuple[str, dict]]:
    """The ABLATIONS rows that change our run; a row with a change our run already has is skipped, and says so."""
    from peftspace.precision import resolve_precision

    def effective(changes: dict) -> dict:  # precision as it resolves on this device: "auto" may already be fp32
        schedule = our_schedule(args, changes)
        return {**schedule.to_dict(), "precision": resolve_precision(schedule.precision, args.device)}

    reference, rows = effective({}), []
    for what, changes in ABLATIONS:
        same = [f"{key}={value}" for key, value in changes.items() if effective({key: value})[key] == reference[key]]
        if same:
            print(f"ablation row {what!r} skipped: our run already has {', '.join(same)}")
            continue
        assert effective(changes) != reference, f"ablation row {what!r} would measure our default run again"
        shown = ", ".join(f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in changes.items())
        rows.append((f"{what} ({shown})", changes))
    return rows


def print_ablation(peer, reference, ablation) -> None:
    print("\nour side (1 worker) with one speed-up changed; the last row has bf16, bucketing and fast dropout off, leaving "
          "the worker's reuse of backbone and data")
    width = max(map(len, ablation))
    print(f"{'our side':<{width}} {'total s':>8} {'/ default':>10} {'strong/ours':>12} {'acc - strong':>13}")
    for name, run in [("default", reference)] + list(ablation.items()):
        print(f"{name:<{width}} {run['total_s']:>8.1f} {run['total_s'] / reference['total_s']:>9.2f}x "
              f"{peer['total_s'] / run['total_s']:>11.2f}x {mean_difference(run, peer):>+13.2f}")


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
    schedule = our_schedule(args)
    ablations = ablation_rows(args) if args.ablation else []
    print(f"sweep benchmark: {len(designs)} LoRA designs x {args.steps} steps, {MODEL} on {TASK}; "
          f"{cpu_name()}, {os.cpu_count()} CPUs, {args.threads} threads; shared machine, timings are noisy "
          f"(load average {os.getloadavg()[0]:.1f} at the start)", flush=True)
    with tempfile.TemporaryDirectory(prefix="peftspace-bench-") as tmp:
        peers = [run_baseline(designs, args, schedule, Path(tmp), strong=True)]
        if args.weak_peer:
            peers.append(run_baseline(designs, args, schedule, Path(tmp), strong=False))
        floor = run_floor_apart(designs, args, schedule) if args.floor else None
        ours_runs = [run_ours(designs, args, workers, Path(tmp)) for workers in args.workers]
        ablation = {name: run_ours(designs, args, 1, Path(tmp), changes, f"-{i}") for i, (name, changes) in enumerate(ablations)}
    print_table(designs, config, peers, ours_runs)
    imports = peer_import_seconds()
    print(f"the peer's imports (torch, transformers, peft; {imports:.1f} s in a fresh interpreter) run before its clock "
          f"starts; our workers' imports are inside ours. With them the strong peer's total is "
          f"{peers[0]['total_s'] + imports:.1f} s: " + ", ".join(
              f"{(peers[0]['total_s'] + imports) / ours['total_s']:.2f}x ours with {ours['workers']} worker(s)"
              for ours in ours_runs))
    one_worker = next((run for run in ours_runs if run["workers"] == 1), ours_runs[0])
    if floor is not None:
        print_floor(floor, peers[0], one_worker)
    if ablation:
        print_ablation(peers[0], next(run for run in ours_runs if run["workers"] == 1), ablation)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    dropout = peers[0]["dropout"]
    print(f"dropout on every side: hidden {dropout['hidden']}, attention {dropout['attention']}, classifier "
          f"{dropout['classifier']}, LoRA {dropout['lora']} (ours draws its masks with fast dropout unless fast_dropout=false); "
          f"max length {schedule.max_length}, truncated alike")
    for peer in peers:
        mean = {k: sum(r[k] for r in peer["rows"]) / len(designs) for k in ("load_s", "train_s", "eval_s")}
        print(f"{'strong' if peer['strong'] else 'weak'} peer per trial (mean): model + peft {mean['load_s']:.1f} s, "
              f"train {mean['train_s']:.1f} s, predict {mean['eval_s']:.1f} s (Trainer's mixed precision "
              f"{sorted({r['mixed_precision'] for r in peer['rows']})}); outside trials: reading and tokenizing SST-2 once")
    scored = ("GLUE dev (872) and the validation split carved from train (1,000), which the peers do not score"
              if schedule.score_validation else "GLUE dev (872), as the peers do")
    print(f"ours per trial: copy of the backbone, train, and scoring {scored}; outside trials: workers' start, backbone, "
          "data, store")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": {k: v for k, v in vars(args).items()}, "space": SPACE.to_dict(), "schedule": schedule.to_dict(),
            "designs": [d.to_dict() for d in designs], "ranks": [layer_ranks(config, d) for d in designs],
            "baseline": peers[0], "weak_peer": peers[1] if args.weak_peer else None, "ours": ours_runs,
            "ablation": ablation, "floor": floor, "peer_imports_s": imports}, indent=2) + "\n")


if __name__ == "__main__":
    main()
