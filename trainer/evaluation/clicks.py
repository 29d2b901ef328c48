"""``lungsam eval --clicks K``: how much corrective clicks help, at original resolution.

The standard interactive protocol (:mod:`trainer.data.clicks`): start from the ground-truth box
around both lungs, then K times click at the centre of the largest error region (positive
on missed lung, negative on drawn non-lung), clicks accumulated and the previous low-res
logits fed back, each click editing the mask around it (:mod:`engine.predict.focus`), exactly
as the GUI does. Reports the mean Dice after 0..K clicks and how
many images got worse at each click.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.errors import LungSamError
from engine.models import LoadedModel
from engine.predict import EmbeddingCache, Predictor, click_correction
from engine.sam import mask_styles, style_index
from trainer.data import Pair, corrective_click, tight_box
from trainer.evaluation.evaluate import load_ground_truth
from trainer.evaluation.metrics import dice

log = logging.getLogger(__name__)


def click_curve(predictor: Predictor, image: np.ndarray, truth: np.ndarray, clicks: int,
                style: str | None = None) -> list[float]:
    """Dice after 0..``clicks`` protocol clicks on one image (bool ``truth`` at original size)."""
    predictor.set_image(image)
    box = tight_box(truth)
    if box is None:
        raise LungSamError("the ground truth is empty: no box to start the clicks from")
    result = predictor.predict(boxes=box, style=style)
    mask = result.masks[0, 0]
    scores = [dice(mask, truth)]
    points: list[tuple[float, float]] = []
    labels: list[int] = []
    for _ in range(clicks):
        click = corrective_click(mask, truth)
        if click is None:  # nothing left to fix
            scores.append(scores[-1])
            continue
        points.append(click[:2])
        labels.append(click[2])
        result, mask = click_correction(predictor, box, points, labels, result, mask, style)
        scores.append(dice(mask, truth))
    return scores


def evaluate_clicks(
    loaded: LoadedModel,
    pairs: list[Pair],
    clicks: int,
    device: str = "auto",
    style: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    where: str = "evaluation",
) -> dict[str, Any]:
    """Summary with ``mean_dice`` (list, index = clicks), ``median_dice``, ``worse`` (images
    whose Dice fell at click k, k = 1..K), ``n`` and per-image ``rows``."""
    if clicks < 1:
        raise LungSamError(f"--clicks must be at least 1 (got {clicks})")
    style_name = mask_styles(loaded.sam)[style_index(loaded.sam, style)]
    predictor = Predictor(loaded, device=device, cache=EmbeddingCache(max_bytes=0))
    rows, skipped = [], []
    for i, pair in enumerate(pairs):
        try:
            gt = load_ground_truth(pair)
        except LungSamError as exc:
            log.warning("skipping %s: %s", pair.image.name, exc)
            skipped.append({"name": pair.name, "reason": str(exc)})
        else:
            rows.append({"name": pair.name, "dice": click_curve(predictor, gt.image.pixels, gt.union, clicks, style_name)})
        if progress:
            progress(i + 1, len(pairs))
    if not rows:
        raise LungSamError(f"{where}: no usable image/mask pair ({len(skipped)} skipped)")
    curves = np.asarray([r["dice"] for r in rows], dtype=np.float64)
    return {
        "clicks": clicks,
        "n": len(rows),
        "n_skipped": len(skipped),
        "style": style_name,
        "model": {"name": loaded.name, "hash": loaded.model_hash, "int8": loaded.is_int8},
        "mean_dice": [float(v) for v in curves.mean(axis=0)],
        "median_dice": [float(v) for v in np.median(curves, axis=0)],
        "worse": [int(v) for v in (np.diff(curves, axis=1) < -1e-9).sum(axis=0)],
        "rows": rows,
        "skipped": skipped,
    }


def format_clicks(summary: dict[str, Any]) -> str:
    lines = [f"{'clicks':>6}{'mean Dice':>11}{'median':>9}{'worse':>7}"]
    n = summary["n"]
    for k, (mean, median) in enumerate(zip(summary["mean_dice"], summary["median_dice"], strict=True)):
        worse = "-" if k == 0 else f"{summary['worse'][k - 1]}"
        lines.append(f"{k:>6}{mean:>11.4f}{median:>9.4f}{worse:>7}")
    share = summary["worse"][0] / n if n else math.nan
    lines.append(f"images: {n}, skipped: {summary['n_skipped']}, worse after click 1: {share:.1%}, "
                 f"style: {summary['style']}, model: {summary['model']['name']}")
    return "\n".join(lines)
