#!/usr/bin/env bash
# The prepared GPU check (issue 12): one GPU, about 5 minutes, every number a ratio from this one run.
#
#   benchmarks/gpu.sh [OUT_DIR]        # default runs/gpu-check; JSON of every part lands there
#
# 1. step time on MiniLM at batch 32 x 64: the frozen floor, peft LoRA (fp32 and bf16) and our
#    single-strategy designs under bf16 autocast, on the GPU (benchmarks/step.py --device cuda);
# 2. a T5-base-sized model (random weights, no download): step time and peak GPU memory for the
#    floor and each strategy (benchmarks/step.py --model t5-base-random);
# 3. packing on/off: four designs stepped one after another vs packed in one forward/backward
#    (benchmarks/packing.py --device cuda);
# 4. a 6-design LoRA sweep: peft + HF Trainer in bf16 with length grouping vs `peftspace sweep`, both
#    on the GPU (benchmarks/sweep.py --device cuda).
# Each part has its own time limit, so one slow part cannot take the others' time; a part that runs
# out says so and the script goes on. Without a CUDA GPU it stops at once with one line.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-runs/gpu-check}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "benchmarks/gpu.sh: torch sees no CUDA GPU on this machine (torch.cuda.is_available() is False); run it on a GPU" >&2
  exit 2
fi
mkdir -p "$OUT"
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}  # one GPU
"$PY" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16 {torch.cuda.is_bf16_supported()}, torch {torch.__version__}')"
started=$SECONDS
failed=0

part() {  # part SECONDS TITLE COMMAND...: run with a time limit; report how long it took
  local limit=$1 title=$2 begin=$SECONDS
  shift 2
  echo; echo "== $title (limit ${limit} s)"
  timeout "$limit" "$@"
  local code=$?
  if [ $code -eq 124 ]; then echo "-- $title: ran past ${limit} s, stopped"; failed=1
  elif [ $code -ne 0 ]; then echo "-- $title: failed (exit $code)"; failed=1
  else echo "-- $title: $((SECONDS - begin)) s"; fi
}

# Each design row comes with its like-for-like references (the floor of the same precision and dropout,
# peft's bf16 LoRA with the same dropout), and peft's bf16 LoRA as users run it (torch's dropout).
part 70 "1. step, MiniLM (ms/step, ratios to the bf16 floor and to peft's bf16 LoRA)" \
  "$PY" benchmarks/step.py --device cuda --steps 30 --warmup 5 --json "$OUT/step-minilm.json" \
  --only "frozen floor bf16 fast-dropout" "peft LoRA bf16" "peft LoRA bf16 fast-dropout" \
  "adapter bf16" "prefix bf16" "bitfit bf16" "lora bf16"
part 80 "2. step and peak GPU memory, T5-base (random weights), each strategy" \
  "$PY" benchmarks/step.py --device cuda --model t5-base-random --steps 10 --warmup 3 --batch-size 32 --max-length 128 \
  --json "$OUT/step-t5-base.json" \
  --only "frozen floor bf16 fast-dropout" "full fine-tuning" "adapter bf16" "prefix bf16" "bitfit bf16" "lora bf16" \
  "s4-t5-base-recalled bf16"
part 50 "3. packing on/off (ms per design-step, packed / alone)" \
  "$PY" benchmarks/packing.py --device cuda --steps 10 --designs 4 --json "$OUT/packing.json"
part 110 "4. 6-design sweep: peft + Trainer (bf16, length grouping) vs peftspace sweep, on the GPU" \
  "$PY" benchmarks/sweep.py --device cuda --designs 6 --steps 100 --workers 1 --schedule score_validation=false \
  --json "$OUT/sweep.json"

echo
"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
def rows(name):
    path = out / name
    return {r["row"]: r for r in json.loads(path.read_text())["rows"]} if path.exists() else {}

step, t5, packing = rows("step-minilm.json"), rows("step-t5-base.json"), rows("packing.json")
print("== ratios (each to the reference of the same precision and dropout, named)")
for row in ("adapter bf16", "prefix bf16", "bitfit bf16", "lora bf16"):
    r = step.get(row)
    if r is None:
        continue
    line = f"MiniLM {row}: {r['median_ms']:.1f} ms/step"
    if r.get("vs_floor") is not None:
        line += f", {r['vs_floor']:.2f}x {r['floor_row']!r}"
    if r.get("vs_peft") is not None:
        line += f", {r['vs_peft']:.2f}x {r['peft_row']!r}"
    if "peft LoRA bf16" in step:  # peft as its users run it: torch's dropout
        line += f", {r['median_ms'] / step['peft LoRA bf16']['median_ms']:.2f}x 'peft LoRA bf16' (torch dropout)"
    print(line)
for row, r in t5.items():
    print(f"T5-base {row}: {r['median_ms']:.0f} ms/step, peak {r['peak_rss_mib']:.0f} MiB"
          + (f", {r['vs_floor']:.2f}x {r['floor_row']!r}" if r.get("vs_floor") is not None and r["row"] != r["floor_row"] else ""))
for kind in ("", " bf16"):
    if f"alone{kind}" in packing and f"packed{kind}" in packing:
        print(f"packing{kind}: packed / alone = {packing[f'packed{kind}']['median_ms'] / packing[f'alone{kind}']['median_ms']:.2f}x")
sweep = out / "sweep.json"
if sweep.exists():
    report = json.loads(sweep.read_text())
    ours = report["ours"][0]
    peer = report["baseline"]
    diff = sum(o["accuracy"] - b["accuracy"] for o, b in zip(ours["rows"], peer["rows"])) / len(ours["rows"])
    print(f"sweep: peft + Trainer {peer['total_s']:.0f} s / ours {ours['total_s']:.0f} s = "
          f"{peer['total_s'] / ours['total_s']:.2f}x; mean accuracy ours - peft {diff:+.2f} points")
    # The first trial pays each side's one-time warm-up (kernels per batch shape); the rest is the steady state.
    later = lambda rows: sum(r["seconds"] for r in rows[1:])
    if len(ours["rows"]) > 1:
        print(f"sweep, trials after the first: peft + Trainer {later(peer['rows']):.0f} s / ours {later(ours['rows']):.0f} s = "
              f"{later(peer['rows']) / later(ours['rows']):.2f}x")
EOF
echo "gpu.sh: $((SECONDS - started)) s in all; JSON in $OUT"
exit $failed
