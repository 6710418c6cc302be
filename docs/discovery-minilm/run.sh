#!/usr/bin/env bash
# The MiniLM discovery of docs/discovery-minilm: calibration, then S0 -> S4 racing with 2 workers (resumable:
# re-run this script after an interruption; finished runs and trials are read back, never re-run). It ran with one
# strategy pool (--narrow 0, --pool-size 140, the defaults then), so those flags resume it as it was.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=docs/discovery-minilm
SCHEDULE=(--steps 100 --batch-size 16 --max-length 64 --max-eval-examples 500 --learning-rate 1e-3 --head-learning-rate 3e-2)
./peftspace calibrate --model minilm --tasks sst2,stsb --data-dir ../shared/data "${SCHEDULE[@]}" \
    --rates 1e-3,3e-3,1e-2,3e-2 --out "$OUT/calibration"
./peftspace discover --model minilm --tasks sst2,stsb --data-dir ../shared/data "${SCHEDULE[@]}" \
    --lr-multipliers "$OUT/calibration/calibration.json" --workers 2 --threads 1 --max-trials 320 --fidelity-check 5 \
    --pool-size 140 --narrow 0 \
    --name discovery-minilm --storage "sqlite:///$OUT/store.db" --out "$OUT"
./peftspace report "$OUT/store.db" --out "$OUT/report"
