"""How long does `lungsam eval` take on a clinical-size validation set?

Builds N (default 250) 1024 x 1024 image/mask pairs by upscaling real validation images of
../shared/data/covidqu_ex/val (written to a temporary folder, not timed), evaluates them with
trainer.evaluation.evaluate.evaluate_model and prints images, total seconds, seconds per image and the
split into load / embed / decode / metrics. Target: 250 images in under 2 minutes with the
compact model on the 2-core reference machine.

    python benchmarks/eval_speed.py [--n 250] [--size 1024] [--model M] [--prompt per-lung]

Without --model the shipped default model is used if installed, else a compact model with
random weights (engine.sam.config.COMPACT); random weights cost the same time per image.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_SRC = ROOT.parent / "shared" / "data" / "covidqu_ex" / "val"
if not DEFAULT_SRC.is_dir():
    DEFAULT_SRC = Path(os.environ.get("LUNGSAM_DATA", "/work/shared/data")) / "covidqu_ex" / "val"
TARGET_SECONDS = 120.0


def make_dataset(src: Path, dst: Path, n: int, size: int) -> Path:
    """N pairs of ``src`` upscaled to size x size (bilinear image, smooth-then-threshold mask)."""
    import numpy as np
    from PIL import Image

    images = sorted((src / "images").iterdir())
    if not images:
        raise SystemExit(f"{src}: no images")
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = images[i % len(images)]
        name = f"{image.stem}_{i:04d}.png" if i >= len(images) else f"{image.stem}.png"
        big = Image.open(image).convert("L").resize((size, size), Image.BILINEAR)
        mask = Image.open(src / "masks" / f"{image.stem}.png").convert("L")
        big_mask = np.asarray(mask.resize((size, size), Image.BILINEAR)) > 127
        big.save(dst / "images" / name, compress_level=1)
        Image.fromarray((big_mask * 255).astype(np.uint8)).save(dst / "masks" / name,
                                                               compress_level=1)
    return dst


def pick_model(spec: str | None, tmp: Path) -> str:
    from engine.models import default_model_name

    if spec:
        return spec
    if default_model_name():
        return "default"
    import torch

    from engine.models import save_sam_folder
    from engine.sam import COMPACT, build_sam

    torch.manual_seed(0)
    folder = save_sam_folder(tmp / "compact-random", build_sam(COMPACT), COMPACT)
    return str(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=250, help="number of images (default 250)")
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels (default 1024)")
    parser.add_argument("--model", help="model name or folder (default: shipped, else compact random)")
    parser.add_argument("--prompt", choices=("union", "per-lung"), default="union")
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="source image/mask folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args()

    import torch

    from trainer.evaluation import evaluate_model

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="lungsam-evalspeed-") as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        data = make_dataset(args.src, tmp / "data", args.n, args.size)
        print(f"prepared {args.n} pairs of {args.size}x{args.size} in "
              f"{time.perf_counter() - start:.1f} s (not timed)")
        model = pick_model(args.model, tmp)
        start = time.perf_counter()
        result = evaluate_model(model, data, prompt=args.prompt, device=args.device)
        total = time.perf_counter() - start
    s = result.summary
    n = s["n"]
    print(f"model: {s['model']['name']} ({model}); prompt: {args.prompt}; "
          f"device: {args.device}; torch threads: {torch.get_num_threads()}")
    print(f"images: {n} (skipped {s['n_skipped']})")
    print(f"total: {total:.1f} s (including model load), {total / n * 1000:.0f} ms per image")
    per_image = "  ".join(f"{k} {v / n * 1000:.0f} ms" for k, v in s["timing"].items() if k != "total")
    print(f"split per image: {per_image}")
    print(f"mean Dice {s['metrics']['dice']['mean']:.4f} (random weights score low)")
    projected = total / n * 250
    status = "met" if projected < TARGET_SECONDS else "MISSED"
    print(f"target 250 images < {TARGET_SECONDS:.0f} s: {status} "
          f"({'measured' if n == 250 else 'projected'} {projected:.1f} s for 250)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
