#!/usr/bin/env bash
# Reproducibility check of docs/discovery-minilm: the grouping stage (S0 -> S1) again with seed 1, the same schedule,
# calibrated multipliers and stage budget (--max-trials 80 = the 16 blocks the full run's S1 share allowed).
# Resumable: re-run after an interruption.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=docs/discovery-minilm/seed1
SCHEDULE=(--steps 100 --batch-size 16 --max-length 64 --max-eval-examples 500 --learning-rate 1e-3 --head-learning-rate 3e-2)
./peftspace discover --model minilm --tasks sst2,stsb --data-dir ../shared/data "${SCHEDULE[@]}" \
    --lr-multipliers docs/discovery-minilm/calibration/calibration.json --workers 2 --threads 1 --max-trials 80 \
    --stages grouping --seed 1 --name discovery-minilm-seed1 --storage "sqlite:///$OUT/store.db" --out "$OUT"
