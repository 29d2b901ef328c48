"""Simulated corrective clicks: where a user would click next to fix a mask.

The standard interactive-segmentation protocol (as in SAM's and RITM's evaluations): take the
largest error region of the current mask against the ground truth (missed lung or drawn
non-lung), click at its interior point farthest from the region's border (the image edge
counts as border), positive (1) on missed lung, negative (0) on drawn non-lung. Training
draws half its clicks that way and half uniformly from the inner part of the same region,
so the model does not learn to expect perfectly centred clicks. One function serves the
training loop (input frame) and ``lungsam eval --clicks`` (original pixels).
"""

from __future__ import annotations

import cv2
import numpy as np

Click = tuple[float, float, int]  # x, y (pixel centres, image coordinates), label 1/0


def _largest_region(error: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The largest 8-connected component of ``error`` (bool HxW) and its area."""
    count, comp, stats, _ = cv2.connectedComponentsWithStats(error.astype(np.uint8), connectivity=8)
    if count <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return comp == best, int(stats[best, cv2.CC_STAT_AREA])


def corrective_click(
    pred: np.ndarray, target: np.ndarray, rng: np.random.Generator | None = None
) -> Click | None:
    """Next click for bool HxW ``pred`` against ``target``; None when they agree.

    Without ``rng`` the protocol point (deterministic, for evaluation); with it, the protocol
    point or (half the time) a uniform draw from the region's pixels at least 30 % as deep.
    """
    missed = target & ~pred
    extra = pred & ~target
    found = [(r, 1) for r in [_largest_region(missed)] if r is not None]
    found += [(r, 0) for r in [_largest_region(extra)] if r is not None]
    if not found:
        return None
    (region, _), label = max(found, key=lambda item: item[0][1])
    padded = np.pad(region, 1).astype(np.uint8)
    depth = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    if rng is not None and rng.random() < 0.5:
        ys, xs = np.nonzero(depth >= 0.3 * depth.max())
        k = int(rng.integers(len(ys)))
        y, x = int(ys[k]), int(xs[k])
    else:
        y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return float(x) + 0.5, float(y) + 0.5, label


def region_points(
    target: np.ndarray, rng: np.random.Generator, max_regions: int = 2
) -> list[Click]:
    """One positive click inside each of the ``max_regions`` largest parts of ``target``
    (a points-only prompt: a click in each lung for both lungs, one for a single lung)."""
    count, comp, stats, _ = cv2.connectedComponentsWithStats(target.astype(np.uint8), connectivity=8)
    order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:max_regions]
    clicks: list[Click] = []
    for label in order:
        region = comp == label
        if region.sum() < 0.05 * target.sum():
            continue  # a speck is not a lung
        depth = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        ys, xs = np.nonzero(depth >= 0.3 * depth.max())
        k = int(rng.integers(len(ys)))
        clicks.append((float(xs[k]) + 0.5, float(ys[k]) + 0.5, 1))
    return clicks
