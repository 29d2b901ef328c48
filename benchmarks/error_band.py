"""Where a model's errors lie: the share of wrong pixels within d px of the true lung border.

A model whose errors sit within 1-2 px of the border misplaces the border inside its token grid
(the case for the hi-res detail path, engine.sam.hires); one whose errors lie far from it
misses or invents whole regions. Both-lung box from the ground truth, masks at the image's
own resolution, a seeded random subset of the pairs.

    python benchmarks/error_band.py --model lungsam-compact-fp32 --data DATA/covidqu_ex/val --limit 200
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from scipy import ndimage

from engine.models import load_model
from engine.predict import Predictor
from trainer.data import find_pairs, tight_box
from trainer.evaluation import load_ground_truth

DISTANCES = (1, 2, 3, 5, 8)


def border_distance(truth: np.ndarray) -> np.ndarray:
    """Per pixel, the Euclidean distance (px) to the nearest pixel of the other class."""
    return np.where(truth, ndimage.distance_transform_edt(truth), ndimage.distance_transform_edt(~truth))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="lungsam-compact-fp32")
    parser.add_argument("--data", type=Path, required=True, help="folder with images/ and masks/")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pairs = find_pairs(args.data)
    random.Random(args.seed).shuffle(pairs)
    pairs = pairs[: args.limit]
    predictor = Predictor(load_model(args.model), device="cpu")
    near = np.zeros(len(DISTANCES))
    wrong = missed = extra = 0
    for pair in pairs:
        gt = load_ground_truth(pair)
        truth = gt.union
        predictor.set_image(gt.image.pixels)
        pred = predictor.predict(boxes=tight_box(truth)).masks[0, 0] > 0
        error = pred ^ truth
        dist = border_distance(truth)[error]
        near += [(dist <= d).sum() for d in DISTANCES]
        wrong += int(error.sum())
        missed += int((truth & ~pred).sum())
        extra += int((pred & ~truth).sum())
    print(f"{args.model} on {len(pairs)} images of {args.data} (seed {args.seed})")
    print(f"wrong pixels {wrong}: missed lung {missed}, drawn outside it {extra}")
    for d, n in zip(DISTANCES, near, strict=True):
        print(f"  within {d} px of the true border: {n / max(wrong, 1):.1%}")


if __name__ == "__main__":
    main()
