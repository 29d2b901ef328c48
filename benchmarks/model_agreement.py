"""Two models on the same images and boxes: Dice between their masks, and each against the truth.

    python benchmarks/model_agreement.py --a lungsam-compact-fp32 --b lungsam-compact-int8 \
        --data ../shared/data/covidqu_ex/val --limit 100 --json F
    python benchmarks/model_agreement.py --a lungsam-compact-fp32 --b lungsam-compact-int8 \
        --data ../shared/data/covid_chestxray_gb --exclude ../shared/data/covid_chestxray_gb/overlap_with_covidqu_ex.csv

Why: what the compare view shows for one box (Dice of the two masks), over a data set, next to
what each model scores against the ground truth; for the shipped pair (one Stage 2 model in
FP32 and in INT8) it says what the INT8 export costs. Prompts are ``lungsam eval``'s union
box (tight around both lungs, no jitter); masks are each Predictor's ``predict`` output
(restricted to the box, as in the app and ``lungsam eval``), at the original resolution. Every
style the two models share is scored (``--styles`` to choose); the ground truth follows one
convention, so a style drawn to another one scores lower against it by design.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.models import load_model
from engine.predict import EmbeddingCache, Predictor
from trainer.data import find_pairs
from trainer.evaluation import dice, load_ground_truth, prompt_boxes
from trainer.training import read_exclude


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "min": min(values), "median": statistics.median(values)}


def agreement(a: str, b: str, data: Path, limit: int | None, styles: list[str] | None,
              exclude: Path | None = None) -> dict:
    """Per style: Dice(A, B), Dice(A, truth), Dice(B, truth) over the first ``limit`` pairs."""
    sides = [Predictor(load_model(spec), device="cpu", cache=EmbeddingCache(max_bytes=0)) for spec in (a, b)]
    shared = [s for s in sides[0].mask_styles if s in sides[1].mask_styles]
    styles = styles or shared
    missing = sorted(set(styles) - set(shared))
    if missing:
        raise SystemExit(f"style(s) {', '.join(missing)} not in both models (shared: {', '.join(shared)})")
    rows: dict[str, dict[str, list[float]]] = {s: {"a_vs_b": [], "a_vs_truth": [], "b_vs_truth": []} for s in styles}
    pairs = find_pairs(data, read_exclude(exclude) if exclude else ())[:limit]
    for pair in pairs:
        gt = load_ground_truth(pair)
        boxes, _ = prompt_boxes(gt, "union")
        for side in sides:
            side.set_image(gt.image.pixels)
        for style in styles:
            masks = [side.predict(boxes=boxes, style=style).masks[0, 0] for side in sides]
            rows[style]["a_vs_b"].append(dice(masks[0], masks[1]))
            rows[style]["a_vs_truth"].append(dice(masks[0], gt.union))
            rows[style]["b_vs_truth"].append(dice(masks[1], gt.union))
    return {"a": a, "b": b, "data": str(data), "n": len(pairs), "prompt": "union box from the ground truth",
            "styles": {s: {k: summary(v) for k, v in r.items()} for s, r in rows.items()},
            "below_0.999_a_vs_b": {s: sum(v < 0.999 for v in r["a_vs_b"]) for s, r in rows.items()}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="model A (name, folder or .pth)")
    parser.add_argument("--b", required=True, help="model B")
    parser.add_argument("--data", required=True, type=Path, help="folder with images/ and masks/")
    parser.add_argument("--limit", type=int, help="the first N pairs only")
    parser.add_argument("--exclude", type=Path, help="CSV/text file whose first column lists images to leave out")
    parser.add_argument("--styles", help="comma-separated mask styles (default: all both models have)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = agreement(args.a, args.b, args.data, args.limit, args.styles.split(",") if args.styles else None,
                       args.exclude)
    print(f"{result['n']} images of {args.data}, {result['prompt']}; A = {args.a}, B = {args.b}")
    print(f"{'style':<12} {'Dice(A,B) mean':>15} {'min':>7} {'< 0.999':>8} {'A vs truth':>11} {'B vs truth':>11}")
    for style, figures in result["styles"].items():
        ab = figures["a_vs_b"]
        print(f"{style:<12} {ab['mean']:>15.4f} {ab['min']:>7.4f} {result['below_0.999_a_vs_b'][style]:>8} "
              f"{figures['a_vs_truth']['mean']:>11.4f} {figures['b_vs_truth']['mean']:>11.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
