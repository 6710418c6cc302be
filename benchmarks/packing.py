"""Packing benchmark (issue 6): ms per design-step, designs trained one after another vs packed.

Rows: ``N`` designs (by default the adapter, prefix, bitfit and lora presets, cycled; ``--designs N``,
``--presets``) each
doing its own training step in turn ("alone"), and the same designs in one packed
forward/backward over the shared frozen MiniLM ("packed"), in fp32 and under bf16 autocast.
A step is what the trial loop does per batch: forward, loss, backward, AdamW step, zero_grad;
each design gets its own batch of real SST-2 examples, all padded to ``--max-length``. Every row
runs in a fresh subprocess (``--row NAME``) so its peak RSS is its own; dropout is on, as in training.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/packing.py --steps 10 [--designs 4] [--device cuda] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step import batches, machine, median_iqr, rss_mib  # the step benchmark's fixed batches and probes

PRESETS = ["adapter", "prefix", "bitfit", "lora"]
ROWS = ["alone", "packed", "alone bf16", "packed bf16"]


def build(args):
    """The pristine MiniLM and ``args.designs`` design models sharing its frozen tensors, heads trainable."""
    from peftspace.formats import make_format
    from peftspace.packing import design_copy
    from peftspace.tasks import load_task
    from peftspace.trial import TrialCache

    cache = TrialCache(max_models=0)
    spec = load_task("sst2", Path(__file__).resolve().parents[1].parent / "shared" / "data").spec
    fmt = make_format("head", spec, cache.tokenizer("minilm"), args.max_length)
    pristine, newly_initialized = cache.model("minilm", fmt.model_class(), fmt.model_kwargs())
    pristine.to(args.device)  # before the copies, which share its tensors
    models, params = [], []
    for i in range(args.designs):
        model, _, _ = design_copy(pristine, args.presets[i % len(args.presets)], i, fmt, newly_initialized)
        models.append(model.train())
        params.append([p for p in model.parameters() if p.requires_grad])
    return pristine, models, params


def run_row(row: str, args) -> dict:
    import torch

    from peftspace.formats import Batch
    from peftspace.packing import PackedModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # a benchmark subprocess of its own: global seeding harms nobody here
    args.batches = 2 * args.designs
    data = [{k: v.to(args.device) for k, v in batch.items()} for batch in batches(args)]
    pristine, models, params = build(args)
    rss_loaded = rss_mib()
    optimizers = [torch.optim.AdamW(p, lr=1e-3) for p in params]
    packed = PackedModel(pristine, models).train() if row.startswith("packed") else None
    bf16 = row.endswith(" bf16")

    def step(first: int):
        mine = [data[(first + i) % len(data)] for i in range(args.designs)]
        if packed is None:
            for model, batch in zip(models, mine):  # one design after another, as a sweep worker runs them
                with torch.autocast(args.device, dtype=torch.bfloat16, enabled=bf16):
                    loss = model(**batch).loss
                loss.backward()
        else:
            inputs = {k: torch.cat([b[k] for b in mine]) for k in mine[0]}
            with torch.autocast(args.device, dtype=torch.bfloat16, enabled=bf16):
                losses = packed.losses(Batch(inputs, []), [len(b["labels"]) for b in mine])
            sum(losses).backward()
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    times = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        step(i * args.designs)
        if args.device == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append((time.perf_counter() - start) * 1000 / args.designs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20  # the device's peak, not the host's
    return {"row": row, "times_ms": times, "rss_loaded_mib": rss_loaded, "peak_rss_mib": peak}


def run_all(args) -> dict:
    rows = [r for r in ROWS if not args.only or r in args.only]
    results: dict[str, dict] = {}
    for round_ in range(args.rounds):
        for row in rows:
            command = [sys.executable, __file__, "--row", row, "--steps", str(max(2, -(-args.steps // args.rounds))),
                       "--warmup", str(args.warmup), "--threads", str(args.threads), "--designs", str(args.designs),
                       "--presets", *args.presets, "--device", args.device,
                       "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"row {row!r} failed:\n{done.stderr}")
            got = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  round {round_ + 1}/{args.rounds} {row}: {statistics.median(got['times_ms']):.0f} ms/design-step", file=sys.stderr)
            mine = results.setdefault(row, {**got, "times_ms": []})
            mine["times_ms"] += got["times_ms"]
            mine["peak_rss_mib"] = max(mine["peak_rss_mib"], got["peak_rss_mib"])
    for r in results.values():
        r["median_ms"], r["iqr_ms"] = median_iqr(r["times_ms"])
        alone = results.get(r["row"].replace("packed", "alone"))
        r["vs_alone"] = r["median_ms"] / alone["median_ms"] if alone else None
    return {"machine": machine(args.threads), "designs": [args.presets[i % len(args.presets)] for i in range(args.designs)],
            "batch": [args.batch_size, args.max_length], "rounds": args.rounds, "device": args.device, "rows": list(results.values())}


def table(report: dict) -> str:
    m = report["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores ({m['threads']} torch threads), torch {m['torch']}",
             f"MiniLM-L6, designs {report['designs']}, each a batch of {report['batch'][0]} x {report['batch'][1]} tokens (SST-2)",
             "", f"| row | ms/design-step | IQR | / alone | peak {'GPU memory' if report['device'] == 'cuda' else 'RSS'} (MiB) |", "|---|---:|---:|---:|---:|"]
    for r in report["rows"]:
        ratio = "-" if r["vs_alone"] is None else f"{r['vs_alone']:.2f}x"
        lines.append(f"| {r['row']} | {r['median_ms']:.0f} | {r['iqr_ms']:.0f} | {ratio} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row (after warm-up)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="run the rows this many times, interleaved")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--designs", type=int, default=4)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--presets", nargs="+", default=PRESETS, help="the designs' presets, cycled")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--only", nargs="*", choices=ROWS)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--row", choices=ROWS, help=argparse.SUPPRESS)
    args = parser.parse_args()
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
