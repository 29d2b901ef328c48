"""Box-prompt Dice under the ways other hospitals export radiographs (the robustness table).

Every image is scored clean and under each named perturbation of :mod:`trainer.evaluation.perturb`
(gamma 0.5 / 2.0, brightness +60, contrast x0.5, JPEG q30, 12 % black border, burnt-in
text), with the tight both-lung box of its (perturbed) ground truth, at the original
resolution. Prints mean Dice per condition and its drop from clean in points, measured in
this one run; ``--json`` writes them. ``--limit N`` draws N pairs at random (``--seed``), not
the first N: COVID-QU-Ex val lists its classes in turn, and its first 300 hold no pneumonia.

    python benchmarks/robustness.py --data ../shared/data/covidqu_ex/val --limit 300
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.models import load_model
from engine.predict import EmbeddingCache, Predictor
from trainer.data import find_pairs, sample_pairs, tight_box
from trainer.evaluation import PERTURBATIONS, dice, load_ground_truth


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model name or folder (default: the shipped default)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--limit", type=int, default=300, help="pairs drawn at random (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--style")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    predictor = Predictor(model, device="cpu", cache=EmbeddingCache(max_bytes=0))
    conditions = {"clean": lambda image, mask: (image, mask), **PERTURBATIONS}
    scores: dict[str, list[float]] = {name: [] for name in conditions}
    for pair in sample_pairs(find_pairs(args.data), args.limit, args.seed):
        gt = load_ground_truth(pair)
        for name, perturb in conditions.items():
            image, mask = perturb(gt.image.pixels, gt.union)
            predictor.set_image(image)
            pred = predictor.predict(boxes=tight_box(mask), style=args.style).masks[0, 0]
            scores[name].append(dice(pred, mask))
    clean = float(np.mean(scores["clean"]))
    table = {name: {"dice": float(np.mean(v)), "drop_points": 100 * (clean - float(np.mean(v)))}
             for name, v in scores.items()}
    print(f"model {model.name}, {len(scores['clean'])} images of {args.data}")
    print(f"{'condition':<20}{'Dice':>8}{'drop (points)':>15}")
    for name, row in table.items():
        print(f"{name:<20}{row['dice']:>8.4f}{row['drop_points']:>15.2f}")
    result = {"model": model.name, "data": str(args.data), "n": len(scores["clean"]), "seed": args.seed,
              "table": table}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
