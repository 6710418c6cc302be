#!/usr/bin/env bash
# The strategy stage alone, with today's defaults (two pools: --pool-size 184 split 96 + 88, --narrow 3, a final race of
# at most --final-blocks 5 paired blocks), from the paper's S3 space, on the same tasks, schedule and calibrated
# multipliers as docs/discovery-minilm (whose S4 ran one pool of 140). Resumable: re-run after an interruption.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=docs/discovery-minilm/strategies
SCHEDULE=(--steps 100 --batch-size 16 --max-length 64 --max-eval-examples 500 --learning-rate 1e-3 --head-learning-rate 3e-2)
./peftspace discover --model minilm --tasks sst2,stsb --data-dir ../shared/data "${SCHEDULE[@]}" \
    --lr-multipliers docs/discovery-minilm/calibration/calibration.json --workers 2 --threads 1 \
    --start S3 --stages strategies \
    --name discovery-minilm-strategies --storage "sqlite:///$OUT/store.db" --out "$OUT"
./peftspace report "$OUT/store.db" --out "$OUT/report"
