"""Masks respect their prompt: nothing far outside the box unless a positive click is there.

SAM's decoder sees the whole image, so a box around one lung can come back with islands on
the trachea, a film marker or an image corner. A user who drew a box meant "inside here";
a positive click outside it means "this too". The region kept for a box is the box grown by
a small margin (3 % of its longer side, at least 4 px: lung borders drawn a little wide
must survive), plus every connected part of the mask that holds a positive click. A
points-only prompt keeps the parts that hold a positive click and any part at least a fifth
the size of the largest (the other lung of a both-lungs click pair), dropping small specks.
Coordinates are original-image pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

MARGIN_FRACTION = 0.03
MARGIN_MIN_PX = 4.0
KEEP_FRACTION = 0.2


def box_margin(box: np.ndarray) -> float:
    """Pixels a box (x0, y0, x1, y1) is grown by before the mask is clipped to it."""
    return max(MARGIN_MIN_PX, MARGIN_FRACTION * float(max(box[2] - box[0], box[3] - box[1])))


def _parts_with_points(mask: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Component labels of ``mask``, the labels hit by ``points`` (x, y), and part areas."""
    count, comp, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    h, w = mask.shape
    hit = set()
    for x, y in points:
        xi, yi = min(int(x), w - 1), min(int(y), h - 1)
        if comp[yi, xi]:
            hit.add(int(comp[yi, xi]))
    return comp, np.asarray(sorted(hit), dtype=np.int64), stats[:, cv2.CC_STAT_AREA]


def restrict_mask(mask: np.ndarray, box: np.ndarray | None, positive: np.ndarray) -> np.ndarray:
    """bool H x W ``mask`` of one prompt, its ``box`` (or None) and positive clicks (K x 2, x y)
    -> the mask limited to what the prompt asked for (a new array; ``mask`` is not changed)."""
    h, w = mask.shape
    if box is not None:
        m = box_margin(box)
        x0, y0 = max(0, int(np.floor(box[0] - m))), max(0, int(np.floor(box[1] - m)))
        x1, y1 = min(w, int(np.ceil(box[2] + m))), min(h, int(np.ceil(box[3] + m)))
        inside = np.zeros_like(mask)
        inside[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
        outside_clicks = [p for p in positive if not (x0 <= p[0] < x1 and y0 <= p[1] < y1)]
        if not outside_clicks:
            return inside
        comp, hit, _ = _parts_with_points(mask, np.asarray(outside_clicks))
        return inside | np.isin(comp, hit) if len(hit) else inside
    if not mask.any():
        return mask.copy()
    comp, hit, area = _parts_with_points(mask, positive)
    if len(area) <= 2:  # background and one part
        return mask.copy()
    big = np.flatnonzero(area[1:] >= KEEP_FRACTION * area[1:].max()) + 1
    return np.isin(comp, np.union1d(hit, big))


def restrict_masks(masks: np.ndarray, boxes: np.ndarray | None, points: np.ndarray | None,
                   labels: np.ndarray | None) -> np.ndarray:
    """bool B x C x H x W masks of B prompts (all candidates of a prompt share its region).

    ``boxes``: B x 4 or None; ``points``: B x N x 2 and ``labels`` B x N (1 = lung) or None.
    """
    out = np.empty_like(masks)
    for b in range(masks.shape[0]):
        positive = np.zeros((0, 2))
        if points is not None and labels is not None:
            positive = points[b][labels[b] == 1]
        box = boxes[b] if boxes is not None else None
        for c in range(masks.shape[1]):
            out[b, c] = restrict_mask(masks[b, c], box, positive)
    return out
