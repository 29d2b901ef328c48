#!/usr/bin/env bash
# Rebuild the shipped default model from ../shared/data, exactly as it was made.
# Stage 0 (base, from scratch) -> Stage 1 (AdaLoRA) -> Stage 2 (QAT + INT8 export) -> ship
# (base, INT8, box head, FP32 twin).
# Every step resumes after a kill (--resume); re-running the script continues where it stopped.
# Takes several hours on a 2-core CPU; see resources/models/lungsam-compact-int8/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-$HOME/lungsam-runs}
THREADS=${THREADS:-1}
TRAIN=$DATA/covidqu_ex/train
VAL=$DATA/covidqu_ex/val
# --val-limit 400: the shipped runs validated on the first 400 val images (Normal and COVID
# only); the trainer now draws 400 at random from all classes (seeded), so a rebuild may keep
# another epoch as best/ than the shipped one did.
common=(--data "$TRAIN" --val "$VAL" --val-limit 400 --threads "$THREADS" --seed 0
        --cache-dir "$RUNS/.data-cache")
resume() { [ -f "$1/checkpoint.pt" ] && echo --resume || true; }

# Stage 0. The shipped run was started with --epochs 24 and, after epoch 4, resumed with
# --epochs 16 (the cosine schedule then follows the 16-epoch plan from that step on).
[ -f "$RUNS/compact-base/summary.json" ] || lungsam train base --arch compact "${common[@]}" \
  --out "$RUNS/compact-base" --epochs 16 --batch-size 16 --lr 4e-4 \
  --events "$RUNS/compact-base.events.jsonl" $(resume "$RUNS/compact-base")

# Default model v2: Stage 1 and Stage 2 ran with THREADS=2 (Stage 0 with 1), interactive
# (trainer.interactive: 0-4 corrective-click rounds per step, a quarter of the prompts points
# only, previous logits fed back) with site-export augmentation (trainer.augment).
# The "anatomical" mask style: covid_chestxray_gb's radiologist convention, learned from its
# near-duplicates of COVID-QU-Ex (train 40, val 14) and from v7_covid_ieee8023 split by patient
# (train 125, val 27); gb's 44 other images stay unseen (test).
python tools/gb_style_sets.py --data "$DATA" --out "$RUNS/gb-style"
python tools/v7_style_sets.py --data "$DATA" --out "$RUNS/v7-style"
styles=(--styles visible,anatomical
        --style-data "anatomical=$RUNS/gb-style/train" --style-data "anatomical=$RUNS/v7-style/train"
        --style-val "anatomical=$RUNS/gb-style/val" --style-val "anatomical=$RUNS/v7-style/val"
        --style-repeat 4)

[ -f "$RUNS/v2-stage1/summary.json" ] || lungsam train stage1 "${common[@]}" "${styles[@]}" \
  --model "$RUNS/compact-base/best" --out "$RUNS/v2-stage1" --epochs 3 --batch-size 16 \
  --events "$RUNS/v2-stage1.events.jsonl" $(resume "$RUNS/v2-stage1")

[ -f "$RUNS/v2-stage2/summary.json" ] || lungsam train stage2 "${common[@]}" "${styles[@]}" \
  --model "$RUNS/v2-stage1/best" --out "$RUNS/v2-stage2" --epochs 1 --batch-size 16 \
  --events "$RUNS/v2-stage2.events.jsonl" $(resume "$RUNS/v2-stage2")

# v2 as it shipped (base = Stage 1 with its adapters merged, stored as FP16), installed in RUNS:
# v3 starts from that base.
python tools/ship_default_model.py --base "$RUNS/v2-stage1/best" \
  --stage2 "$RUNS/v2-stage2/best" --data "$DATA" --models-dir "$RUNS/v2-shipped" --install-only

# Default model v3 (THREADS=2): v2's base grown by the hi-res detail path into compact-hr
# (engine.sam.hires; its input normalisation becomes "percentile"), trained in full for 3
# epochs at 1e-4 (Stage 0 warm start: interactive, site-export augmentation, both styles), then
# Stage 1 (2 epochs) and Stage 2 (1 epoch) as the paper's recipe.
[ -f "$RUNS/v3-hr-base/summary.json" ] || lungsam train base --arch compact-hr "${common[@]}" "${styles[@]}" \
  --model "$RUNS/v2-shipped/lungsam-compact-base" --out "$RUNS/v3-hr-base" --epochs 3 --batch-size 16 --lr 1e-4 \
  --events "$RUNS/v3-hr-base.events.jsonl" $(resume "$RUNS/v3-hr-base")

[ -f "$RUNS/v3-stage1/summary.json" ] || lungsam train stage1 "${common[@]}" "${styles[@]}" \
  --model "$RUNS/v3-hr-base/best" --out "$RUNS/v3-stage1" --epochs 2 --batch-size 16 \
  --events "$RUNS/v3-stage1.events.jsonl" $(resume "$RUNS/v3-stage1")

[ -f "$RUNS/v3-stage2/summary.json" ] || lungsam train stage2 "${common[@]}" "${styles[@]}" \
  --model "$RUNS/v3-stage1/best" --out "$RUNS/v3-stage2" --epochs 1 --batch-size 16 \
  --events "$RUNS/v3-stage2.events.jsonl" $(resume "$RUNS/v3-stage2")

# The shipped base (what the trainer pane fine-tunes) is Stage 1 with its adapters merged.
python tools/ship_default_model.py --base "$RUNS/v3-stage1/best" \
  --stage2 "$RUNS/v3-stage2/best" --data "$DATA"

# Zero-click: the box head reads the lung boxes off the shipped INT8 model's embedding (its
# encoder frozen; each training image embedded as is and twice augmented), and goes into both
# shipped folders (the FP32 base's embeddings differ only by the quantisation error).
lungsam train box-head --model resources/models/lungsam-compact-int8 \
  --also resources/models/lungsam-compact-base --data "$DATA/covidqu_ex/train" \
  --val "$DATA/covidqu_ex/val" --cache-dir "$RUNS/.data-cache" --threads "$THREADS"

# The FP32 twin (the compare view's default left side): the same Stage 2 weights before the INT8
# export, FP16-stored, with the INT8 folder's box head; checks that they re-export to the
# shipped INT8 weights exactly.
python tools/ship_fp32_twin.py --stage2 "$RUNS/v3-stage2/best"
