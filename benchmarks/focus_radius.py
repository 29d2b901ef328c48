"""How the focus radius of a corrective click trades safety against gain (the table in
``engine/predict/focus.py``).

For each radius, runs the corrective-click protocol of ``lungsam eval --clicks`` (ground-truth
box, then clicks on the largest error region, each editing the mask within the radius) and
prints the share of images worse after the first click and the mean Dice after each click.
The radius is chosen on a *selection* set apart from the report sets (covidqu_ex/val and
covid_chestxray_gb): a random 200 of covidqu_ex/train and the v7_covid_ieee8023 images in the
anatomical style. Rule: the largest radius that leaves at most 5 % of the images of every
selection set worse after click 1.

    python benchmarks/focus_radius.py --data DATA/covidqu_ex/train:200 \
        --data DATA/v7_covid_ieee8023:all:anatomical --radii 4,6,8,10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engine.predict.focus as focus
from engine.models import load_model
from trainer.data import find_pairs, sample_pairs
from trainer.evaluation.clicks import evaluate_clicks


def parse_set(spec: str) -> tuple[str, int | None, str | None]:
    """``DIR[:N|all[:STYLE]]``: a data folder, how many pairs to draw (seeded), its mask style."""
    parts = spec.split(":")
    limit = None if len(parts) < 2 or parts[1] in ("", "all") else int(parts[1])
    style = parts[2] if len(parts) > 2 and parts[2] else None
    return parts[0], limit, style


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model name or folder (default: the shipped default)")
    parser.add_argument("--data", action="append", required=True, help="DIR[:N|all[:STYLE]], repeatable")
    parser.add_argument("--radii", default="4,6,8,10,12", help="radii in 64ths of the input side")
    parser.add_argument("--clicks", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    radii = [int(r) for r in args.radii.split(",")]
    sets = []
    for spec in args.data:
        folder, limit, style = parse_set(spec)
        pairs = find_pairs(folder)
        sets.append((spec, sample_pairs(pairs, limit, args.seed) if limit else pairs, style))
    shipped = focus.FOCUS_RADIUS
    results: dict[str, dict[str, dict]] = {}
    print(f"model {model.name}; shipped radius {shipped * 64:g}/64; {args.clicks} clicks")
    print(f"{'radius':<8}{'set':<48}{'worse@1':>9}  mean Dice after 0..{args.clicks} clicks")
    try:
        for r in radii:
            focus.FOCUS_RADIUS = r / 64
            for spec, pairs, style in sets:
                summary = evaluate_clicks(model, pairs, args.clicks, device="cpu", style=style)
                share = summary["worse"][0] / summary["n"]
                results.setdefault(f"{r}/64", {})[spec] = {
                    "n": summary["n"], "worse_after_click_1": share, "mean_dice": summary["mean_dice"]}
                curve = " ".join(f"{v:.4f}" for v in summary["mean_dice"])
                print(f"{r}/64{'':<4}{spec:<48}{share:>8.1%}  {curve}", flush=True)
    finally:
        focus.FOCUS_RADIUS = shipped
    safe = [r for r in radii if all(v["worse_after_click_1"] <= 0.05 for v in results[f"{r}/64"].values())]
    chosen = max(safe) if safe else None
    print(f"largest radius with <= 5 % worse after click 1 on every set: "
          f"{f'{chosen}/64' if chosen is not None else 'none of those tried'}")
    out = {"model": model.name, "clicks": args.clicks, "seed": args.seed, "results": results,
           "chosen": chosen}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
