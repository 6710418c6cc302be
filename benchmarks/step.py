"""Step benchmark (issues 6, 12): ms per training step of peftspace designs on MiniLM, side by side, like for like.

Rows: the forward alone, full fine-tuning, the frozen-backbone floor (forward + activation backward
through every layer, no weight gradients), HF peft LoRA with the ranks and targets that peftspace's
``lora`` preset gets at 0.5%, and peftspace's single-strategy presets plus the mixed S4-style design.
The floor, peft LoRA and our designs each run in fp32 and under bf16 autocast (fp32 master weights;
our default precision on a bf16-capable CPU), each with torch's ``nn.Dropout`` and with our
``FastDropout`` (masks four per random number, ``peftspace.dropout``): ``Schedule.fast_dropout``
true or false. A row's name is its base, `` bf16`` under autocast, and `` fast-dropout`` or
`` torch-dropout`` where it runs the other dropout than its owner does by default (torch's for the
floor, full fine-tuning and peft; ours for our designs): ``frozen floor bf16 fast-dropout``,
``lora bf16 torch-dropout``. Each row's ratios are to the floor with the same precision and dropout
(``/ floor``) and to peft's bf16 LoRA step with the same dropout (``/ peft bf16 LoRA``).

A step is what peftspace's trial loop does per batch: forward, loss, backward, AdamW step,
zero_grad. Every row runs in its own fresh subprocess (``--row NAME``) so its peak RSS is its own;
the parent runs all rows in one invocation (``--rounds`` > 1 interleaves them) and prints ratios.
Batches are the same for every row: by default a fixed set of real SST-2 sentences padded to 64
tokens; ``--lengths real`` draws them as our trainer does (SST-2 train, seed 0, length-bucketed in
windows of ``Schedule.bucket_window`` batches, each padded to its longest sentence, truncated at
``--max-length``, 128 by default there).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/step.py --steps 10 --rounds 2 [--threads N] [--json out.json]
    ... --lengths real --batches 8 --steps 16 --rounds 2   # real SST-2 lengths as the trainer draws them (steps: a multiple of batches)
    ... --dropout fast --precision bf16       # only the rows of one dropout kind / precision
    ... --steps 2 --warmup 1 --only "frozen floor bf16 fast-dropout" "peft LoRA bf16 fast-dropout" "lora bf16"  # a quick check
    ... --device cuda                         # on the GPU (bf16 rows under CUDA autocast; peak = GPU memory)
    ... --model t5-base-random --device cuda  # a randomly initialized T5-base (220M): our strategies and the floor

``--model t5-base-random`` trains T5-base's shape (12+12 blocks, d_model 768, vocab 32128) from random
weights on random token ids (targets of 4 tokens): no download, the step cost of the real model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OURS = ["adapter", "prefix", "bitfit", "lora", "s4-t5-base-recalled"]
SINGLE_STRATEGY = OURS[:4]
FORWARD, FULL, FLOOR, PEFT = "forward only", "full fine-tuning", "frozen floor", "peft LoRA"
MODELS = ("minilm", "t5-base-random")
T5_BASE = dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12, num_heads=12,
               decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)


class Row(NamedTuple):
    """What a row trains (``base``: one of FORWARD, FULL, FLOOR, PEFT or a design), and how."""

    base: str
    bf16: bool  # forward and loss under bf16 autocast
    fast_dropout: bool  # peftspace's FastDropout (and fast attention dropout) instead of torch's

    @property
    def name(self) -> str:
        # The dropout is named where it is not the one its owner runs by default: torch's for the
        # reference rows (what a peft user runs), ours for our designs (what the trial loop runs).
        default_fast = self.base in OURS
        tag = "" if self.fast_dropout == default_fast else " fast-dropout" if self.fast_dropout else " torch-dropout"
        return self.base + (" bf16" if self.bf16 else "") + tag

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    @property
    def dropout(self) -> str:
        return "fast" if self.fast_dropout else "torch"


# The forward and full fine-tuning as context (fp32, torch dropout); then, for each dropout kind,
# the floor, peft and ours in fp32 and bf16, so each block of the table is like for like.
VARIANTS = {row.name: row for row in [Row(FORWARD, False, False), Row(FULL, False, False)]
            + [Row(base, bf16, fast) for fast in (False, True) for base in [FLOOR, PEFT, *OURS] for bf16 in (False, True)]}
ROWS = list(VARIANTS)


def floor_of(row: Row) -> str:
    """The floor a row is compared with: the same precision and dropout."""
    return Row(FLOOR, row.bf16, row.fast_dropout).name


def peft_of(row: Row) -> str:
    """The peft step a row is compared with: peft's bf16 LoRA with the same dropout."""
    return Row(PEFT, True, row.fast_dropout).name


def rows_of(model: str) -> list[str]:
    """The rows a model has: every row for MiniLM; T5 has no peft rows (the peft baseline is MiniLM's)."""
    return ROWS if model == "minilm" else [name for name, row in VARIANTS.items() if row.base != PEFT]


def machine(threads: int, device: str = "cpu") -> dict:
    import torch

    info = Path("/proc/cpuinfo").read_text()
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None}


def rss_mib() -> float:
    """The current resident set (not the peak), read from /proc."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def batches(args) -> list[dict]:
    """The batches every row steps through, in order: fixed-length (``--lengths fixed``) or as the trainer draws them."""
    import numpy as np
    import torch

    from peftspace.models import load_tokenizer
    from peftspace.tasks import load_task

    if getattr(args, "model", "minilm") == "t5-base-random":  # (the packing benchmark's args have no --model)
        generator = torch.Generator().manual_seed(0)
        shape = (args.batch_size, args.max_length)
        return [{"input_ids": torch.randint(2, T5_BASE["vocab_size"], shape, generator=generator),
                 "attention_mask": torch.ones(shape, dtype=torch.long),
                 "labels": torch.randint(2, T5_BASE["vocab_size"], (args.batch_size, 4), generator=generator)}
                for _ in range(args.batches)]

    tokenizer = load_tokenizer("minilm")
    if getattr(args, "lengths", "fixed") == "real":
        return trainer_batches(args, tokenizer, load_task("sst2", DATA_DIR, seed=0).train)
    # A fixed set of real SST-2 sentences, every batch padded (or truncated) to exactly max_length tokens.
    train = load_task("sst2", DATA_DIR).train
    pick = np.random.default_rng(0).choice(len(train), args.batch_size * args.batches, replace=False)
    out = []
    for chunk in np.split(pick, args.batches):
        examples = [train[i] for i in chunk]
        encoded = tokenizer([e.texts[0] for e in examples], padding="max_length", truncation=True,
                            max_length=args.max_length, return_tensors="pt")
        out.append({**encoded, "labels": torch.tensor([e.label for e in examples])})
    return out


def trainer_batches(args, tokenizer, train) -> list[dict]:
    """The first ``args.batches`` batches a trial with seed 0 trains on: ``batch_stream`` with the default
    ``bucket_window``, each sentence truncated at max_length and each batch padded to its longest, as
    the head format encodes and collates them."""
    import torch

    from peftspace.batching import batch_stream
    from peftspace.schedule import Schedule

    encoded: dict[int, dict] = {}

    def lengths(chunk: list[int]) -> list[int]:  # encodes only the windows the stream reaches
        texts = tokenizer([train[i].texts[0] for i in chunk], truncation=True, max_length=args.max_length)
        encoded.update({i: {k: v[j] for k, v in texts.items()} for j, i in enumerate(chunk)})
        return [len(encoded[i]["input_ids"]) for i in chunk]

    stream = batch_stream(len(train), args.batch_size, Schedule().bucket_window, torch.Generator().manual_seed(0), lengths)
    out = []
    for _ in range(args.batches):
        picked = next(stream)
        inputs = tokenizer.pad([encoded[i] for i in picked], return_tensors="pt")
        out.append({**inputs, "labels": torch.tensor([train[i].label for i in picked])})
    return out


def build(row: str, name: str = "minilm"):
    """The model a row trains, and its trainable parameters (empty for the floor and the forward)."""
    import torch
    from transformers import AutoModelForSequenceClassification, T5Config, T5ForConditionalGeneration

    import peftspace
    from peftspace.dropout import use_fast_dropout
    from peftspace.models import load_backbone

    spec = VARIANTS[row]
    torch.manual_seed(0)  # a benchmark subprocess of its own: global seeding harms nobody here
    if name == "t5-base-random":
        model = T5ForConditionalGeneration(T5Config(**T5_BASE))
    else:
        model = load_backbone("minilm", AutoModelForSequenceClassification, num_labels=2)
    if spec.base in (FORWARD, FLOOR):
        model.requires_grad_(False)
        if spec.base == FLOOR:
            # Nothing upstream requires grad, so autograd would skip the backward altogether; making
            # the embeddings' output require it runs the activation backward through every layer.
            # (T5: every embedding, the encoder's and the decoder's token lookups).
            entries = [model.bert.embeddings] if hasattr(model, "bert") else \
                [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
            for entry in entries:
                entry.register_forward_hook(lambda m, i, out: out.requires_grad_(True))
    elif spec.base == PEFT:
        from peft import LoraConfig, TaskType, get_peft_model

        if spec.fast_dropout:
            # On the plain model: the family map finds its blocks and attentions (not through PeftModel's
            # wrapper); peft's own LoRA dropout stays torch's, and is Identity at the preset's lora_dropout 0.
            use_fast_dropout(model)
        # The same per-layer ranks, targets, alpha and LoRA dropout that peftspace's `lora` preset gets at 0.5%.
        plan = peftspace.plan(model.config, "lora")
        ranks = [layer.sizes["L"] for layer in plan.layers]
        names = {"q": "query", "v": "value"}
        targets = [names[t] for t in plan.options.lora_targets]
        default = statistics.mode(ranks)
        pattern = {f"layer.{layer.index}.attention.self.{t}": layer.sizes["L"]
                   for layer in plan.layers for t in targets if layer.sizes["L"] != default}
        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=default, rank_pattern=pattern,
                                                 lora_alpha=plan.options.lora_alpha, lora_dropout=plan.options.lora_dropout,
                                                 target_modules=targets))
    elif spec.base != FULL:
        peftspace.apply(model, spec.base)
        backbone = {id(p) for p in model.base_model.parameters()}
        for p in model.parameters():  # the task head trains too, as in the trial loop (and peft's SEQ_CLS)
            if id(p) not in backbone:
                p.requires_grad_(True)
    if spec.fast_dropout and spec.base != PEFT:
        use_fast_dropout(model)  # after apply, as the trial loop does (prefix tuning's attention is swapped too)
    model.train()  # dropout on in every row, as when training
    return model, [p for p in model.parameters() if p.requires_grad]


def run_row(row: str, args) -> dict:
    """Time one row in this (fresh) process; what the parent asked for goes back as one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    data = [{k: v.to(args.device) for k, v in batch.items()} for batch in batches(args)]
    model, params = build(row, args.model)
    model.to(args.device)
    rss_loaded = torch.cuda.memory_allocated() / 2**20 if cuda else rss_mib()
    optimizer = torch.optim.AdamW(params, lr=1e-3) if params else None
    bf16, forward_only = VARIANTS[row].bf16, VARIANTS[row].base == FORWARD

    def step(batch):
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=bf16), torch.set_grad_enabled(not forward_only):
            loss = model(**batch).loss  # only forward + loss under autocast; backward follows its dtypes
        if forward_only:
            return
        loss.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    # A batch shape's first step pays one-time set-up (oneDNN primitives: seconds for a 4-token batch),
    # so with real lengths the warm-up passes over every distinct batch once before timing.
    warmup = max(args.warmup, len(data)) if getattr(args, "lengths", "fixed") == "real" else args.warmup
    times, widths = [], []
    for i in range(warmup + args.steps):
        batch = data[i % len(data)]
        start = time.perf_counter()
        step(batch)
        if cuda:
            torch.cuda.synchronize()  # the step's kernels, not just their launches
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
            widths.append(batch["input_ids"].shape[1])
    # the device's peak (GPU memory), or the process's peak RSS (KiB on Linux)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"row": row, "times_ms": times, "cycle_ms": cycle_means(times, len(data)), "padded_lengths": widths,
            "trainable": sum(p.numel() for p in params), "rss_loaded_mib": rss_loaded, "peak_rss_mib": peak}


def cycle_means(times: list[float], cycle: int) -> list[float]:
    """Mean step time of each full pass over the ``cycle`` distinct batches (a partial last pass is dropped).

    With real lengths the batches differ in width, so single steps mix shapes and their median moves with
    which shapes happen to fall in the middle; a pass over every batch does the same work in every row.
    """
    return [statistics.fmean(times[i:i + cycle]) for i in range(0, len(times) - cycle + 1, cycle)]


def median_iqr(times: list[float]) -> tuple[float, float]:
    if len(times) < 2:  # one pass: no spread to report
        return statistics.median(times), 0.0
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return statistics.median(times), q3 - q1


def selected(args) -> list[str]:
    """The rows this run times: the model's, narrowed by --only, --dropout and --precision."""
    def wanted(name: str) -> bool:
        row = VARIANTS[name]
        return ((not args.only or name in args.only) and args.dropout in ("both", row.dropout)
                and args.precision in ("both", row.precision))

    return [name for name in rows_of(args.model) if wanted(name)]


def run_all(args) -> dict:
    """Every row in a fresh subprocess, round after round, step times pooled per row."""
    rows = selected(args)
    if not rows:
        sys.exit("no row left: --only, --dropout and --precision select nothing together")
    per_round = max(2, -(-args.steps // args.rounds))
    if args.lengths == "real":  # whole passes over the batches, so that every round times every batch alike
        per_round = -(-per_round // args.batches) * args.batches
    results: dict[str, dict] = {}
    for round_ in range(args.rounds):
        for row in rows:
            command = [sys.executable, __file__, "--row", row, "--steps", str(per_round), "--warmup", str(args.warmup),
                       "--threads", str(args.threads), "--batch-size", str(args.batch_size),
                       "--max-length", str(args.max_length), "--batches", str(args.batches), "--device", args.device,
                       "--model", args.model, "--lengths", args.lengths]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"row {row!r} failed:\n{done.stderr}")
            got = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  round {round_ + 1}/{args.rounds} {row}: {statistics.median(got['times_ms']):.0f} ms", file=sys.stderr)
            mine = results.setdefault(row, {**got, "times_ms": [], "cycle_ms": [], "padded_lengths": []})
            mine["times_ms"] += got["times_ms"]
            mine["cycle_ms"] += got["cycle_ms"]
            mine["padded_lengths"] += got["padded_lengths"]
            mine["peak_rss_mib"] = max(mine["peak_rss_mib"], got["peak_rss_mib"])
            mine["rss_loaded_mib"] = min(mine["rss_loaded_mib"], got["rss_loaded_mib"])
    for r in results.values():
        # Real lengths: the median of per-pass means (each pass steps through every batch once); fixed: of steps.
        r["median_ms"], r["iqr_ms"] = median_iqr(r["cycle_ms"] if args.lengths == "real" else r["times_ms"])
        r["peak_over_loaded_mib"] = r["peak_rss_mib"] - r["rss_loaded_mib"]
    for r in results.values():
        row = VARIANTS[r["row"]]
        r["precision"], r["dropout"] = row.precision, row.dropout
        # Like for like: the floor of the same precision and dropout; peft's bf16 LoRA with the same dropout.
        for key, reference in (("floor", floor_of(row)), ("peft", peft_of(row))):
            r[f"{key}_row"] = reference
            r[f"vs_{key}"] = r["median_ms"] / results[reference]["median_ms"] if reference in results else None
    first = next(iter(results.values()))
    return {"machine": machine(args.threads, args.device), "model": args.model, "device": args.device,
            "batch": [args.batch_size, args.max_length], "lengths": args.lengths,
            "mean_padded_length": statistics.fmean(first["padded_lengths"]),
            "steps": len(first["times_ms"]), "cycles": len(first["cycle_ms"]), "batches": args.batches,
            "rounds": args.rounds, "rows": list(results.values())}


def _ratio(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


def table(report: dict) -> str:
    m = report["machine"]
    memory = "GPU memory" if report.get("device") == "cuda" else "RSS"
    model = {"minilm": "MiniLM-L6", "t5-base-random": "T5-base (random weights)"}[report.get("model", "minilm")]
    size, length = report["batch"]
    batch = (f"batch {size} x {length} tokens" if report.get("lengths", "fixed") == "fixed" else
             f"batch {size} of real SST-2 train sentences as the trainer draws them (length-bucketed, truncated at "
             f"{length}; {report['mean_padded_length']:.1f} tokens padded on average)")
    lines = [(f"Machine: {m['cpu']}, {m['cores']} cores ({m['threads']} torch threads), avx512_bf16={m['avx512_bf16']}, "
              f"amx_bf16={m['amx_bf16']}, torch {m['torch']}" + (f", GPU {m['gpu']}" if m.get("gpu") else "")),
             (f"{model}, {batch}, median of "
              + (f"{report['cycles']} pass means (each pass: one step on each of the {report['batches']} batches; "
                 f"{report['steps']} steps)" if report.get("lengths", "fixed") == "real" else f"{report['steps']} steps")
              + f" over {report['rounds']} round(s) on {report.get('device', 'cpu')}"),
             "/ floor: to the frozen floor with the same precision and dropout; "
             "/ peft bf16 LoRA: to peft's bf16 LoRA step with the same dropout",
             "", f"| row | precision | dropout | ms/step | IQR | / floor | / peft bf16 LoRA | trainable | "
                 f"peak - loaded {memory} (MiB) | peak {memory} (MiB) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['row']} | {r['precision']} | {r['dropout']} | {r['median_ms']:.0f} | {r['iqr_ms']:.0f} | "
                     f"{_ratio(r['vs_floor'])} | {_ratio(r['vs_peft'])} | {r['trainable']:,} | "
                     f"{r['peak_over_loaded_mib']:.0f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines + [""] + worst_single_strategy(report) + floor_bound(report))


def worst_single_strategy(report: dict) -> list[str]:
    """Per precision and dropout, the slowest single-strategy design against its floor and against peft."""
    lines = []
    for precision in ("bf16", "fp32"):
        for dropout in ("fast", "torch"):
            group = [r for r in report["rows"] if VARIANTS[r["row"]].base in SINGLE_STRATEGY
                     and r["precision"] == precision and r["dropout"] == dropout]
            if not group:
                continue
            line = f"single-strategy designs, {precision}, {dropout} dropout ({len(group)}):"
            for key, what in (("vs_floor", f"the {precision} floor"), ("vs_peft", "peft's bf16 LoRA")):
                known = [r for r in group if r[key] is not None]
                if known:
                    worst = max(known, key=lambda r: r[key])
                    line += f" at most {worst[key]:.2f}x {what} ({worst['row']});"
            lines.append(line.rstrip(";:"))
    return lines


def floor_bound(report: dict) -> list[str]:
    """How close to peft any design doing the floor's work can get: the bf16 floor (fast dropout, our default)
    over peft's bf16 LoRA step as users run it (torch's dropout) and with our dropout; then our slowest
    single-strategy design (bf16, fast dropout) against peft as users run it."""
    medians = {r["row"]: r["median_ms"] for r in report["rows"]}
    floor, users, same = (medians.get(f"{FLOOR} bf16 fast-dropout"), medians.get(f"{PEFT} bf16"),
                          medians.get(f"{PEFT} bf16 fast-dropout"))
    if floor is None or (users is None and same is None):
        return []
    parts = [f"{floor / users:.2f}x peft's bf16 LoRA as users run it (torch dropout)" if users else None,
             f"{floor / same:.2f}x peft's bf16 LoRA with fast dropout" if same else None]
    line = (f"the bf16 frozen floor (fast dropout) is {' and '.join(p for p in parts if p)}: "
            "no design doing the floor's work can go below these ratios")
    ours = [r for r in report["rows"] if VARIANTS[r["row"]].base in SINGLE_STRATEGY and r["precision"] == "bf16"
            and r["dropout"] == "fast"]
    if ours and users:
        worst = max(ours, key=lambda r: r["median_ms"])
        line += f"; our single-strategy designs at most {worst['median_ms'] / users:.2f}x peft as users run it ({worst['row']})"
    return [line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row (after warm-up)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (--lengths real: at least one per batch)")
    parser.add_argument("--rounds", type=int, default=1, help="run the rows this many times, interleaved; steps split over rounds")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lengths", choices=["fixed", "real"], default="fixed",
                        help="fixed: every batch padded to --max-length; real: SST-2 train batches as the trainer draws them")
    parser.add_argument("--max-length", type=int, help="tokens per sentence at most (default 64 fixed, 128 real)")
    parser.add_argument("--batches", type=int, default=4, help="distinct batches, stepped through in order and cycled")
    parser.add_argument("--only", nargs="*", choices=ROWS, metavar="ROW", help=f"a subset of the rows: {ROWS}")
    parser.add_argument("--dropout", choices=["torch", "fast", "both"], default="both", help="only the rows of this dropout")
    parser.add_argument("--precision", choices=["fp32", "bf16", "both"], default="both", help="only the rows of this precision")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", choices=MODELS, default="minilm")
    parser.add_argument("--row", choices=ROWS, help=argparse.SUPPRESS)  # internal: one row, in this process
    args = parser.parse_args()
    if args.lengths == "real" and args.model != "minilm":
        parser.error("--lengths real draws SST-2 sentences for MiniLM; --model t5-base-random trains on random token ids")
    if args.max_length is None:
        args.max_length = 128 if args.lengths == "real" else 64
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("--device cuda: torch sees no CUDA GPU on this machine")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    if args.row:
        print(json.dumps(run_row(args.row, args)))
        return
    report = run_all(args)
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
