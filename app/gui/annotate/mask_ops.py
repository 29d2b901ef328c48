"""Mask edits the user makes by hand: brush, eraser, fill holes, remove islands.

Qt-free: masks are bool HxW arrays in original-image pixels, edited in place where that is
cheap (brush) and returned new where the operation is global (fill, islands). Every function
returns the bounding rectangle it may have changed, so the canvas repaints only that part of
a 4k x 5k overlay.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

Rect = tuple[int, int, int, int]
"""(x0, y0, x1, y1) with exclusive x1/y1, in image pixels."""

MIN_BRUSH, MAX_BRUSH = 1, 400
"""Brush radius limits in image pixels."""


def clamp_rect(rect: Rect, shape: tuple[int, int]) -> Rect | None:
    """``rect`` clipped to an HxW image, or None when nothing of it is inside."""
    x0, y0, x1, y1 = rect
    height, width = shape
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(width, x1), min(height, y1)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def paint_stroke(
    mask: np.ndarray, start: tuple[float, float], end: tuple[float, float], radius: int, value: bool
) -> Rect | None:
    """Paint (``value`` True) or erase a round-capped segment of ``radius`` pixels, in place.

    ``start``/``end`` are (x, y) image coordinates; a click is a segment of length 0. Returns
    the changed area (or None when the stroke lies outside the image).
    """
    if mask.dtype != np.bool_ or not mask.flags.c_contiguous:
        raise ValueError("mask must be a C-contiguous bool array")
    radius = int(max(MIN_BRUSH, min(MAX_BRUSH, radius)))
    x0, y0 = (round(float(v)) for v in start)
    x1, y1 = (round(float(v)) for v in end)
    # cv2's thick lines reach a pixel past the radius: a segment's rectangle gets that margin,
    # so the caller's repaint and lung-overlap clean-up see every pixel the stroke set
    pad = radius + (2 if (x0, y0) != (x1, y1) else 0)
    rect = clamp_rect(
        (min(x0, x1) - pad, min(y0, y1) - pad, max(x0, x1) + pad + 1, max(y0, y1) + pad + 1),
        mask.shape,
    )
    if rect is None:
        return None
    canvas = mask.view(np.uint8)
    colour = 1 if value else 0
    cv2.circle(canvas, (x0, y0), radius, colour, thickness=-1, lineType=cv2.LINE_8)
    if (x0, y0) != (x1, y1):
        cv2.line(canvas, (x0, y0), (x1, y1), colour, thickness=2 * radius + 1, lineType=cv2.LINE_8)
        cv2.circle(canvas, (x1, y1), radius, colour, thickness=-1, lineType=cv2.LINE_8)
    return rect


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Mask with every enclosed background region filled (vessels and hila inside a lung)."""
    return ndimage.binary_fill_holes(mask)


def remove_small_islands(mask: np.ndarray, relative: float = 0.05, min_pixels: int = 16) -> np.ndarray:
    """Keep connected parts of at least ``relative`` x the largest part (and ``min_pixels``).

    Relative, not absolute: two lungs of a 'lungs' label both stay, crumbs go, whatever the
    image resolution. The largest part always stays.
    """
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask.copy()
    sizes = np.bincount(labels.ravel())[1:]
    keep_size = max(float(min_pixels), relative * float(sizes.max()))
    keep = np.zeros(count + 1, dtype=bool)
    keep[1:] = sizes >= keep_size
    keep[1 + int(sizes.argmax())] = True
    return keep[labels]


def count_regions(mask: np.ndarray) -> int:
    """Connected regions (8-neighbour) of ``mask``: how many holes a fill closed, say."""
    return int(ndimage.label(mask, structure=np.ones((3, 3), bool))[1])


def changed_rect(before: np.ndarray, after: np.ndarray) -> Rect | None:
    """Bounding rectangle of the pixels that differ, or None when the masks are equal."""
    diff = before != after
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(diff[rows[0] : rows[-1] + 1].any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def mask_bbox(mask: np.ndarray) -> Rect | None:
    """Bounding rectangle of the True pixels (None for an empty mask)."""
    return changed_rect(np.zeros_like(mask), mask)
