"""Our Predictor vs segment_anything.SamPredictor on the same weights, side by side.

Prints embedding time and box-to-mask time (median and p95) for both, interleaved in one
process so machine load affects both alike, and the ratio (theirs / ours: > 1 means ours is
faster). Usage:

    python benchmarks/predictor.py --arch compact --prompts 100
    python benchmarks/predictor.py --arch vit_b --embed-repeats 3 --prompts 50
    python benchmarks/predictor.py --model resources/models/<name>   # a model folder
    python benchmarks/predictor.py --arch vit_b --device cuda --embed-repeats 10
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from segment_anything import SamPredictor

from engine.imaging import load_image
from engine.models import LoadedModel, load_model
from engine.predict import EmbeddingCache, Predictor
from engine.sam import build_sam, preset
from engine.sam.preprocess import stretch_percentiles
from trainer.evaluation import dice

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared/data/covid_chestxray_gb/images"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def summary(name: str, ours: list[float], theirs: list[float]) -> str:
    mo, mt = statistics.median(ours), statistics.median(theirs)
    return (f"{name:<14} ours median {mo * 1e3:9.2f} ms  p95 {percentile(ours, 95) * 1e3:9.2f} ms | "
            f"SamPredictor median {mt * 1e3:9.2f} ms  p95 {percentile(theirs, 95) * 1e3:9.2f} ms | "
            f"ratio {mt / mo:5.2f}x")


def random_boxes(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0, 0.4 * width, n)
    y0 = rng.uniform(0, 0.4 * height, n)
    x1 = x0 + rng.uniform(0.3 * width, 0.6 * width, n)
    y1 = y0 + rng.uniform(0.3 * height, 0.6 * height, n)
    return np.stack([x0, y0, np.minimum(x1, width), np.minimum(y1, height)], 1)


def set_their_image(theirs: SamPredictor, rgb: np.ndarray, normalization: str) -> None:
    """``SamPredictor.set_image``, with our input normalisation where SAM's differs: a
    "percentile" model (compact-hr) gets its stretch on SamPredictor's resized image, through
    ``set_torch_image`` (SAM's mean/std and padding follow), so both predictors do the same work."""
    if normalization != "percentile":
        theirs.set_image(rgb)
        return
    resized = theirs.transform.apply_image(rgb)
    batch = torch.as_tensor(resized, device=theirs.device).permute(2, 0, 1)[None].float()
    theirs.set_torch_image(stretch_percentiles(batch), rgb.shape[:2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="compact", help="architecture with random weights (vit_b, compact, ...)")
    parser.add_argument("--model", help="a model folder / .pth instead of random weights")
    parser.add_argument("--image", help="image file (default: a covid_chestxray_gb image)")
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--embed-repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.model:
        model = load_model(args.model)
    else:
        torch.manual_seed(0)
        config = preset(args.arch)
        model = LoadedModel(build_sam(config), config, f"random-{args.arch}", "random")
    image_path = Path(args.image) if args.image else sorted(DEFAULT_IMAGE.glob("*.jp*g"))[0]
    pixels = load_image(image_path).pixels
    rgb = np.repeat(pixels[:, :, None], 3, 2) if pixels.ndim == 2 else pixels
    print(f"model {model.name} ({model.config.name}, {model.config.img_size} px input), image "
          f"{image_path.name} {pixels.shape[1]}x{pixels.shape[0]}, threads {args.threads}, "
          f"INT8 {model.is_int8}, device {args.device}")

    ours = Predictor(model, device=args.device, cache=EmbeddingCache(max_bytes=0))
    theirs = SamPredictor(model.sam.to(args.device))

    def sync() -> None:  # CUDA runs asynchronously: time the work, not its launch
        if args.device == "cuda":
            torch.cuda.synchronize()

    embed_ours, embed_theirs = [], []
    for _ in range(args.embed_repeats):
        ours.cache.clear()
        t = time.perf_counter()
        ours.set_image(pixels)
        sync()
        embed_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        with torch.inference_mode():
            set_their_image(theirs, rgb, model.config.normalization)
        sync()
        embed_theirs.append(time.perf_counter() - t)
    caching = Predictor(model, device=args.device)  # the app's predictor: embeddings cached
    caching.set_image(pixels)
    t = time.perf_counter()
    caching.set_image(pixels)
    cached = time.perf_counter() - t

    boxes = random_boxes(args.prompts, *pixels.shape[:2])
    mask_ours, mask_theirs, agree = [], [], []
    for box in boxes:
        t = time.perf_counter()
        a = ours.predict(boxes=box, restrict=False).masks[0, 0]  # the same work as SamPredictor
        mask_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        with torch.inference_mode():
            b = theirs.predict(box=box, multimask_output=False)[0][0]
        mask_theirs.append(time.perf_counter() - t)
        agree.append(dice(a, b))
    print(summary("embedding", embed_ours, embed_theirs))
    print(summary("box-to-mask", mask_ours, mask_theirs))
    print(f"cached re-embedding (same image again): {cached * 1e3:.2f} ms")
    print(f"mask agreement Dice over {len(agree)} boxes: min {min(agree):.5f}, mean {np.mean(agree):.5f}")


if __name__ == "__main__":
    main()
