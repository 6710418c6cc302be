"""Step benchmark (issue 6): ms per training step of peftspace designs on MiniLM, side by side.

Rows: the forward alone, the fp32 frozen-backbone floor (forward + activation backward through
every layer, no weight gradients), full fine-tuning, HF peft LoRA with the ranks and targets that
peftspace's ``lora`` preset gets at 0.5%, and peftspace's single-strategy presets plus the mixed
S4-style design, the last two in fp32 and under bf16 autocast (fp32 master weights).

A step is what peftspace's trial loop does per batch: forward, loss, backward, AdamW step,
zero_grad. Every row runs in its own fresh subprocess (``--row NAME``) so its peak RSS is its own;
the parent runs all rows in one invocation (``--rounds`` > 1 interleaves them) and prints ratios.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/step.py --steps 10 [--threads N] [--json out.json]
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

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OURS = ["adapter", "prefix", "bitfit", "lora", "s4-t5-base-recalled"]
ROWS = (["forward only", "frozen floor", "full fine-tuning", "peft LoRA", "peft LoRA bf16"]
        + [f"{design}{suffix}" for design in OURS for suffix in ("", " bf16")])
FLOOR, PEFT = "frozen floor", "peft LoRA"
MODELS = ("minilm", "t5-base-random")
T5_BASE = dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12, num_heads=12,
               decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)


def rows_of(model: str) -> list[str]:
    """The rows a model has: every row for MiniLM; T5 has no peft rows (the peft baseline is MiniLM's)."""
    return ROWS if model == "minilm" else [r for r in ROWS if not r.startswith(PEFT)]


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
    """A fixed set of real SST-2 batches, every one exactly max_length tokens, the same for all rows."""
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

    train = load_task("sst2", DATA_DIR).train
    pick = np.random.default_rng(0).choice(len(train), args.batch_size * args.batches, replace=False)
    tokenizer = load_tokenizer("minilm")
    out = []
    for chunk in np.split(pick, args.batches):
        examples = [train[i] for i in chunk]
        encoded = tokenizer([e.texts[0] for e in examples], padding="max_length", truncation=True,
                            max_length=args.max_length, return_tensors="pt")
        out.append({**encoded, "labels": torch.tensor([e.label for e in examples])})
    return out


def build(row: str, name: str = "minilm"):
    """The model a row trains, and its trainable parameters (empty for the floor and the forward)."""
    import torch
    from transformers import AutoModelForSequenceClassification, T5Config, T5ForConditionalGeneration

    import peftspace
    from peftspace.dropout import use_fast_dropout
    from peftspace.models import load_backbone

    torch.manual_seed(0)  # a benchmark subprocess of its own: global seeding harms nobody here
    if name == "t5-base-random":
        model = T5ForConditionalGeneration(T5Config(**T5_BASE))
    else:
        model = load_backbone("minilm", AutoModelForSequenceClassification, num_labels=2)
    design = row.removesuffix(" bf16")
    if row in ("forward only", FLOOR):
        model.requires_grad_(False)
        if row == FLOOR:
            # Nothing upstream requires grad, so autograd would skip the backward altogether; making
            # the embeddings' output require it runs the activation backward through every layer.
            # (T5: every embedding, the encoder's and the decoder's token lookups).
            entries = [model.bert.embeddings] if hasattr(model, "bert") else \
                [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
            for entry in entries:
                entry.register_forward_hook(lambda m, i, out: out.requires_grad_(True))
    elif design == PEFT:
        from peft import LoraConfig, TaskType, get_peft_model

        # The same per-layer ranks, targets and alpha that peftspace's `lora` preset gets at 0.5%.
        plan = peftspace.plan(model.config, "lora")
        ranks = [layer.sizes["L"] for layer in plan.layers]
        names = {"q": "query", "v": "value"}
        targets = [names[t] for t in plan.options.lora_targets]
        default = statistics.mode(ranks)
        pattern = {f"layer.{layer.index}.attention.self.{t}": layer.sizes["L"]
                   for layer in plan.layers for t in targets if layer.sizes["L"] != default}
        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=default, rank_pattern=pattern,
                                                 lora_alpha=plan.options.lora_alpha, target_modules=targets))
    elif design != "full fine-tuning":
        peftspace.apply(model, design)
        use_fast_dropout(model)  # as the trial loop does
        backbone = {id(p) for p in model.base_model.parameters()}
        for p in model.parameters():  # the task head trains too, as in the trial loop (and peft's SEQ_CLS)
            if id(p) not in backbone:
                p.requires_grad_(True)
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
    dtype = torch.bfloat16 if row.endswith(" bf16") else None

    def step(batch):
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=dtype is not None), \
                torch.set_grad_enabled(row != "forward only"):
            loss = model(**batch).loss  # only forward + loss under autocast; backward follows its dtypes
        if row == "forward only":
            return
        loss.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    times = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        step(data[i % len(data)])
        if cuda:
            torch.cuda.synchronize()  # the step's kernels, not just their launches
        if i >= args.warmup:
            times.append((time.perf_counter() - start) * 1000)
    # the device's peak (GPU memory), or the process's peak RSS (KiB on Linux)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"row": row, "times_ms": times, "trainable": sum(p.numel() for p in params),
            "rss_loaded_mib": rss_loaded, "peak_rss_mib": peak}


def median_iqr(times: list[float]) -> tuple[float, float]:
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return statistics.median(times), q3 - q1


def run_all(args) -> dict:
    """Every row in a fresh subprocess, round after round, step times pooled per row."""
    rows = [r for r in rows_of(args.model) if not args.only or r in args.only]
    per_round = max(2, -(-args.steps // args.rounds))
    results: dict[str, dict] = {}
    for round_ in range(args.rounds):
        for row in rows:
            command = [sys.executable, __file__, "--row", row, "--steps", str(per_round), "--warmup", str(args.warmup),
                       "--threads", str(args.threads), "--batch-size", str(args.batch_size),
                       "--max-length", str(args.max_length), "--batches", str(args.batches), "--device", args.device,
                       "--model", args.model]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"row {row!r} failed:\n{done.stderr}")
            got = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  round {round_ + 1}/{args.rounds} {row}: {statistics.median(got['times_ms']):.0f} ms", file=sys.stderr)
            mine = results.setdefault(row, {**got, "times_ms": []})
            mine["times_ms"] += got["times_ms"]
            mine["peak_rss_mib"] = max(mine["peak_rss_mib"], got["peak_rss_mib"])
            mine["rss_loaded_mib"] = min(mine["rss_loaded_mib"], got["rss_loaded_mib"])
    for r in results.values():
        r["median_ms"], r["iqr_ms"] = median_iqr(r["times_ms"])
        r["peak_over_loaded_mib"] = r["peak_rss_mib"] - r["rss_loaded_mib"]
    for r in results.values():
        for name, base in (("vs_floor", FLOOR), ("vs_peft_lora", PEFT)):
            r[name] = r["median_ms"] / results[base]["median_ms"] if base in results else None
    return {"machine": machine(args.threads, args.device), "model": args.model, "device": args.device,
            "batch": [args.batch_size, args.max_length],
            "steps": len(next(iter(results.values()))["times_ms"]), "rounds": args.rounds, "rows": list(results.values())}


def table(report: dict) -> str:
    m = report["machine"]
    memory = "GPU memory" if report.get("device") == "cuda" else "RSS"
    model = {"minilm": "MiniLM-L6", "t5-base-random": "T5-base (random weights)"}[report.get("model", "minilm")]
    lines = [(f"Machine: {m['cpu']}, {m['cores']} cores ({m['threads']} torch threads), avx512_bf16={m['avx512_bf16']}, "
              f"amx_bf16={m['amx_bf16']}, torch {m['torch']}" + (f", GPU {m['gpu']}" if m.get("gpu") else "")),
             (f"{model}, batch {report['batch'][0]} x {report['batch'][1]} tokens, median of {report['steps']} "
              f"steps over {report['rounds']} round(s) on {report.get('device', 'cpu')}; ratios to the fp32 rows of the same run"),
             "", f"| row | ms/step | IQR | / floor | / peft LoRA | trainable | peak - loaded {memory} (MiB) | peak {memory} (MiB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def ratio(x):
        return "-" if x is None else f"{x:.2f}x"

    for r in report["rows"]:
        lines.append(f"| {r['row']} | {r['median_ms']:.0f} | {r['iqr_ms']:.0f} | {ratio(r['vs_floor'])} | "
                     f"{ratio(r['vs_peft_lora'])} | {r['trainable']:,} | {r['peak_over_loaded_mib']:.0f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row (after warm-up)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="run the rows this many times, interleaved; steps split over rounds")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batches", type=int, default=4, help="distinct batches in the fixed set, cycled")
    parser.add_argument("--only", nargs="*", choices=ROWS, help="a subset of the rows")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", choices=MODELS, default="minilm")
    parser.add_argument("--row", choices=ROWS, help=argparse.SUPPRESS)  # internal: one row, in this process
    args = parser.parse_args()
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
