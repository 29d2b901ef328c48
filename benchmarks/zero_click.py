"""Zero-click against a ground-truth box, and how well the quality score ranks bad masks.

For each image of each DATA folder (images/ + masks/): the Dice of the mask from the tight
ground-truth box around both lungs (what a user's box gives), the Dice of the zero-click
proposal (no prompt), whether its lungs came out swapped, every quality signal of
:mod:`engine.propose.quality` and the combined score. Then per set and pooled: mean Dice
of both, the gap in points, the share below 0.95, and per signal the AUROC of (1 - signal)
for "zero-click Dice < 0.95" and the share of those images among the 20 % most doubtful.

    python benchmarks/zero_click.py --data DATA/covidqu_ex/val \
        --data DATA/covid_chestxray_gb:anatomical:DATA/covid_chestxray_gb/overlap_with_covidqu_ex.csv \
        --json zero_click.json

A ``--data`` entry is FOLDER[:STYLE[:EXCLUDE_CSV]]. ``--limit N`` takes every k-th image so
that N are used (a spread over the set, not its first files). ``--flip`` also measures the
agreement with the horizontally flipped image (a second embedding per image).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.models import load_model
from engine.predict import EmbeddingCache, Predictor
from engine.propose import propose_lungs, propose_scored
from trainer.data import IMAGE_LEFT, IMAGE_RIGHT, find_pairs, tight_box
from trainer.evaluation import dice
from trainer.evaluation.evaluate import load_ground_truth, lungs_swapped
from trainer.evaluation.ranking import auroc, caught_in_top
from trainer.training import read_exclude

SIGNALS = ("iou_pred", "stability", "jitter", "box_fill", "balance")
BAD = 0.95


def parse_data(text: str) -> tuple[Path, str | None, list[str]]:
    parts = text.split(":")
    folder = Path(parts[0])
    style = parts[1] if len(parts) > 1 and parts[1] else None
    exclude = read_exclude(Path(parts[2])) if len(parts) > 2 and parts[2] else []
    return folder, style, exclude


def measure(predictor: Predictor, folder: Path, style: str | None, exclude: list[str], limit: int | None,
            flip: bool) -> list[dict]:
    pairs = find_pairs(folder, exclude)
    if limit and len(pairs) > limit:
        pairs = [pairs[i] for i in np.linspace(0, len(pairs) - 1, limit).round().astype(int)]
    rows = []
    for pair in pairs:
        gt = load_ground_truth(pair)
        start = time.perf_counter()
        predictor.set_image(gt.image.pixels)
        proposal, signals, quality = propose_scored(predictor, style)
        seconds = time.perf_counter() - start
        box_mask = predictor.predict(boxes=tight_box(gt.union), style=style).masks[0, 0]
        labels = gt.labels
        lung_boxes = [b for b in (tight_box(labels == IMAGE_LEFT), tight_box(labels == IMAGE_RIGHT)) if b is not None]
        lung_box_mask = predictor.predict(boxes=np.asarray(lung_boxes), style=style).masks[:, 0].any(0)
        straight = dice(proposal.masks[0], labels == IMAGE_LEFT) + dice(proposal.masks[1], labels == IMAGE_RIGHT)
        row = {
            "name": pair.name, "set": folder.name if folder.name not in ("val", "train", "test") else
            f"{folder.parent.name}/{folder.name}",
            "box_dice": dice(box_mask, gt.union), "lung_box_dice": dice(lung_box_mask, gt.union),
            "auto_dice": dice(proposal.union, gt.union),
            "lung_dice": straight / 2, "swapped": lungs_swapped(proposal.masks, labels), "found": proposal.found,
            "quality": quality, "seconds": seconds, **signals.as_dict(),
        }
        if flip:
            predictor.set_image(np.ascontiguousarray(gt.image.pixels[:, ::-1]))
            flipped = propose_lungs(predictor, style)
            row["flip"] = dice(flipped.union[:, ::-1], proposal.union)
        rows.append(row)
    return rows


def summarize(rows: list[dict], signals: tuple[str, ...]) -> dict:
    box = np.array([r["box_dice"] for r in rows])
    auto = np.array([r["auto_dice"] for r in rows])
    bad = auto < BAD
    out = {
        "n": len(rows), "box_dice": float(box.mean()), "auto_dice": float(auto.mean()),
        "lung_box_dice": float(np.mean([r["lung_box_dice"] for r in rows])),
        "gap_points": float((box.mean() - auto.mean()) * 100),
        "box_below_095": float((box < BAD).mean()), "auto_below_095": float(bad.mean()),
        "swapped": int(sum(r["swapped"] for r in rows)), "not_found": int(sum(not r["found"] for r in rows)),
        "seconds_per_image": float(np.mean([r["seconds"] for r in rows])), "ranking": {},
    }
    for name in (*signals, "quality"):
        value = np.array([r[name] for r in rows], np.float64)
        out["ranking"][name] = {"auroc": auroc(1 - value, bad), "top20_caught": caught_in_top(1 - value, bad)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True, help="FOLDER[:STYLE[:EXCLUDE_CSV]]")
    parser.add_argument("--model", help="model (default: the shipped default)")
    parser.add_argument("--limit", type=int, help="at most N images per set, spread over it")
    parser.add_argument("--flip", action="store_true", help="also measure flip agreement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write per-image rows and the summaries here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    predictor = Predictor(model, device="cpu", cache=EmbeddingCache(max_bytes=0))
    print(f"model {model.name} (box head: {'yes' if model.box_head is not None else 'no'})")
    signals = (*SIGNALS, "flip") if args.flip else SIGNALS
    all_rows, report = [], {}
    for spec in args.data:
        folder, style, exclude = parse_data(spec)
        rows = measure(predictor, folder, style, exclude, args.limit, args.flip)
        all_rows += rows
        report[str(folder)] = summarize(rows, signals)
    report["pooled"] = summarize(all_rows, signals)
    for name, s in report.items():
        print(f"\n{name}: n={s['n']}  box Dice {s['box_dice']:.4f} (per-lung boxes {s['lung_box_dice']:.4f})  zero-click Dice {s['auto_dice']:.4f}  "
              f"gap {s['gap_points']:.2f} points  below 0.95: box {s['box_below_095']:.1%} zero-click "
              f"{s['auto_below_095']:.1%}  swapped {s['swapped']}  not found {s['not_found']}  "
              f"{s['seconds_per_image'] * 1000:.0f} ms/image")
        for sig, r in s["ranking"].items():
            print(f"  {sig:<10} AUROC {r['auroc']:.3f}   20% most doubtful hold {r['top20_caught']:.1%} of Dice<0.95")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": report, "rows": all_rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
