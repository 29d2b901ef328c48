"""Which larger encoder still fits the interactive budget: INT8 embedding and box-to-mask
latency of candidate compact-hr variants (random weights, exported to INT8 as shipped) beside
the shipped default, interleaved in one run, 2 threads, an image upscaled to 2048 x 2048.

Why: the shipped model underfits (model card), so the next default model needs capacity, and
issue 12's budget (embedding <= 40 ms at 2048 px with preprocessing, box-to-mask <= 8 ms on 2
threads) says how much. Latency does not depend on the weights' values, so random weights
measure a candidate before any training.

    python benchmarks/encoder_budget.py --image "DATA/covidqu_ex/val/images/Normal (10233).png"
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.latency_pair import interleaved_latency, upscaled
from engine.models import LoadedModel, export_int8, load_model, load_model_folder
from engine.predict import EmbeddingCache, Predictor
from engine.sam import build_sam
from engine.sam.config import COMPACT_HR

CANDIDATES = {
    "192d x12": replace(COMPACT_HR, name="c12", encoder_depth=12, encoder_global_attn_indexes=(3, 7, 11)),
    "256d x8, 4 heads": replace(COMPACT_HR, name="w256", encoder_embed_dim=256, encoder_num_heads=4),
    "288d x8, 4 heads": replace(COMPACT_HR, name="w288", encoder_embed_dim=288, encoder_num_heads=4),
    "192d x8, 384 px input": replace(COMPACT_HR, name="r384", img_size=384, encoder_window_size=12),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", required=True, type=Path)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    side = args.size
    models: dict[str, LoadedModel] = {"shipped default": load_model(None)}
    with tempfile.TemporaryDirectory() as tmp:
        for label, config in CANDIDATES.items():
            torch.manual_seed(0)
            models[label] = load_model_folder(export_int8(build_sam(config), config, Path(tmp) / config.name))
        predictors = {k: Predictor(m, device="cpu", cache=EmbeddingCache(max_bytes=0)) for k, m in models.items()}
        box = np.array([0.12 * side, 0.15 * side, 0.88 * side, 0.9 * side])
        medians = interleaved_latency(predictors, upscaled(args.image, side), box, args.repeats, warmup=2)
    base = medians["shipped default"]["embed"]
    print(f"{side}x{side}, {args.threads} threads, medians of {args.repeats}, INT8")
    for k, med in medians.items():
        print(f"{k:<24} embedding {med['embed']:6.1f} ms ({med['embed'] / base:4.2f}x)  "
              f"box-to-mask {med['box']:5.1f} ms")

if __name__ == "__main__":
    main()
