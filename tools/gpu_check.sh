#!/usr/bin/env bash
# The GPU checks, as one script for a borrowed CUDA machine (see README "GPU").
# Needs, beside the working tree: .gpu_site/ (pure-Python packages the GPU image lacks:
# segment_anything, pydicom) and .gpu_data/ (a few image/mask pairs for training speed).
# Writes logs to $OUT (or ./gpu-logs).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-logs}; mkdir -p "$OUT"
export PYTHONPATH="$PWD/.gpu_site:$PWD" PYTHONUNBUFFERED=1
PY=${PY:-python3}
IMG=resources/samples/pneumocystis-pneumonia-1.jpg
{
  nvidia-smi -L
  $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  $PY -m pytest -q -o addopts="-p no:cacheprovider" tests/test_cuda.py -rs
  $PY benchmarks/predictor.py --model lungsam-compact-int8 --device cuda --image $IMG --prompts 100 --embed-repeats 30
  $PY benchmarks/predictor.py --model lungsam-compact-base --device cuda --image $IMG --prompts 100 --embed-repeats 30
  $PY benchmarks/predictor.py --arch vit_b --device cuda --image $IMG --prompts 100 --embed-repeats 20
  $PY benchmarks/train_speed.py --arch compact --device cuda --data .gpu_data --images 64 --batch-size 64 --steps 10
  $PY benchmarks/train_speed.py --arch vit_b --device cuda --data .gpu_data --images 16 --batch-size 8 --steps 5
} 2>&1 | tee "$OUT/gpu_check.log"
