"""Two models side by side on one large radiograph: embedding (preprocessing included) and
box-to-mask latency, interleaved (A, B, A, B, ...) in one process so a busy machine slows both.

The issue-12 budget is read at 2048 x 2048 on 2 threads: embedding <= 40 ms, box-to-mask
<= 8 ms. The image is a real radiograph upscaled (bicubic) to ``--size``.

    python benchmarks/latency_pair.py --a lungsam-compact-int8 --b RUNS/v3/lungsam-compact-int8 \
        --image DATA/covidqu_ex/val/images/X.png
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from engine.imaging import load_image
from engine.models import load_model
from engine.predict import EmbeddingCache, Predictor


def upscaled(path: Path, size: int) -> np.ndarray:
    """The radiograph at ``path`` resized (bicubic) to ``size`` x ``size``: a large image made
    from a real one."""
    return cv2.resize(load_image(path).pixels, (size, size), interpolation=cv2.INTER_CUBIC)


def interleaved_latency(predictors: dict[str, Predictor], image: np.ndarray, box: np.ndarray,
                        repeats: int, warmup: int = 1) -> dict[str, dict[str, float]]:
    """Median ms of embedding (preprocessing included: ``set_image`` with nothing cached) and of
    box-to-mask (``box``, original pixels) per predictor, the predictors taken in turn in each
    round so a busy machine slows all alike; ``warmup`` rounds first, not counted. The
    predictors must not cache embeddings (``EmbeddingCache(max_bytes=0)``)."""
    times: dict[str, dict[str, list[float]]] = {k: {"embed": [], "box": []} for k in predictors}
    for round_ in range(warmup + repeats):
        for key, predictor in predictors.items():
            start = time.perf_counter()
            predictor.set_image(image)
            embedded = time.perf_counter()
            predictor.predict(boxes=box)
            if round_ >= warmup:
                times[key]["embed"].append(embedded - start)
                times[key]["box"].append(time.perf_counter() - embedded)
    return {k: {what: 1e3 * statistics.median(v) for what, v in t.items()} for k, t in times.items()}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--a", required=True, help="model name or folder")
    parser.add_argument("--b", required=True, help="model name or folder")
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    s = args.size
    box = np.array([0.15 * s, 0.2 * s, 0.88 * s, 0.83 * s])
    models = {"a": args.a, "b": args.b}
    predictors = {k: Predictor(load_model(m), device="cpu", cache=EmbeddingCache(max_bytes=0)) for k, m in models.items()}
    medians = interleaved_latency(predictors, upscaled(args.image, s), box, args.repeats)
    result = {models[k]: med for k, med in medians.items()}
    for model, med in result.items():
        print(f"{model}: embedding {med['embed']:.1f} ms, box-to-mask {med['box']:.1f} ms "
              f"(medians of {args.repeats}, {s}x{s}, {args.threads} threads)")
    return result

if __name__ == "__main__":
    main()
