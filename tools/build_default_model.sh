#!/usr/bin/env bash
# Rebuild the shipped default model from ../shared/data, exactly as it was made.
# Stage 0 (base, from scratch) -> Stage 1 (AdaLoRA) -> Stage 2 (QAT + INT8 export) -> ship.
# Every step resumes after a kill (--resume); re-running the script continues where it stopped.
# Takes several hours on a 2-core CPU; see resources/models/lungsam-compact-int8/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-$HOME/lungsam-runs}
THREADS=${THREADS:-1}
TRAIN=$DATA/covidqu_ex/train
VAL=$DATA/covidqu_ex/val
common=(--data "$TRAIN" --val "$VAL" --val-limit 400 --threads "$THREADS" --seed 0
        --cache-dir "$RUNS/.data-cache")
resume() { [ -f "$1/checkpoint.pt" ] && echo --resume || true; }

# Stage 0. The shipped run was started with --epochs 24 and, after epoch 4, resumed with
# --epochs 16 (the cosine schedule then follows the 16-epoch plan from that step on).
[ -f "$RUNS/compact-base/summary.json" ] || lungsam train base --arch compact "${common[@]}" \
  --out "$RUNS/compact-base" --epochs 16 --batch-size 16 --lr 4e-4 \
  --events "$RUNS/compact-base.events.jsonl" $(resume "$RUNS/compact-base")

# The shipped Stage 1 and Stage 2 below ran with THREADS=2 (Stage 0 with 1).
# The "anatomical" mask style: covid_chestxray_gb's radiologist convention, learned from its
# near-duplicates of COVID-QU-Ex (train 40, val 14); its 44 other images stay unseen (test).
python tools/gb_style_sets.py --data "$DATA" --out "$RUNS/gb-style"
styles=(--styles visible,anatomical --style-data "anatomical=$RUNS/gb-style/train"
        --style-val "anatomical=$RUNS/gb-style/val" --style-repeat 16)

[ -f "$RUNS/styled-stage1/summary.json" ] || lungsam train stage1 "${common[@]}" "${styles[@]}" \
  --model "$RUNS/compact-base/best" --out "$RUNS/styled-stage1" --epochs 3 --batch-size 16 \
  $(resume "$RUNS/styled-stage1")

[ -f "$RUNS/styled-stage2/summary.json" ] || lungsam train stage2 "${common[@]}" "${styles[@]}" \
  --model "$RUNS/styled-stage1/best" --out "$RUNS/styled-stage2" --epochs 1 --batch-size 16 \
  $(resume "$RUNS/styled-stage2")

python tools/ship_default_model.py --base "$RUNS/compact-base/best" \
  --stage2 "$RUNS/styled-stage2/best" --data "$DATA"
