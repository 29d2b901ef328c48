"""Validation of user prompts in original-image pixel coordinates.

Policy (documented in the README): a box that sticks out of the image is clipped to it; a
box entirely outside, with x1 <= x0 or y1 <= y0, non-finite numbers or the wrong shape is a
:class:`PromptError`. Points must lie inside the image and have labels 0 (background) or
1 (foreground).
"""

from __future__ import annotations

import numpy as np

from engine.errors import PromptError

MAX_PROMPTS = 64


def validate_boxes(boxes: object, image_size: tuple[int, int]) -> np.ndarray:
    """Bx4 float array (x0, y0, x1, y1) clipped to the image, or a clear error."""
    height, width = image_size
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PromptError(f"box must be four numbers x0,y0,x1,y1 ({exc})") from exc
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] == 0:
        raise PromptError(f"boxes must have shape (N, 4), got {tuple(arr.shape)}")
    if arr.shape[0] > MAX_PROMPTS:
        raise PromptError(f"too many boxes ({arr.shape[0]}; at most {MAX_PROMPTS})")
    if not np.isfinite(arr).all():
        raise PromptError("box coordinates must be finite numbers (got NaN or infinity)")
    for x0, y0, x1, y1 in arr:
        if x1 <= x0 or y1 <= y0:
            raise PromptError(f"box {x0:g},{y0:g},{x1:g},{y1:g}: need x1 > x0 and y1 > y0")
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise PromptError(
                f"box {x0:g},{y0:g},{x1:g},{y1:g} lies outside the {width}x{height} image"
            )
    clipped = arr.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    return clipped


def validate_points(
    points: object, labels: object, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) x,y points and (N,) int labels, or a clear error."""
    height, width = image_size
    try:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        lab = np.asarray(labels, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise PromptError(f"points must be x,y pairs with one label each ({exc})") from exc
    if len(pts) == 0:
        raise PromptError("the point list is empty")
    if len(pts) != len(lab):
        raise PromptError(f"{len(pts)} points but {len(lab)} labels")
    if len(pts) > MAX_PROMPTS:
        raise PromptError(f"too many points ({len(pts)}; at most {MAX_PROMPTS})")
    if not (np.isfinite(pts).all() and np.isfinite(lab).all()):
        raise PromptError("point coordinates must be finite numbers (got NaN or infinity)")
    if not np.isin(lab, (0, 1)).all():
        raise PromptError("point labels must be 1 (lung) or 0 (not lung)")
    outside = (pts[:, 0] < 0) | (pts[:, 0] > width) | (pts[:, 1] < 0) | (pts[:, 1] > height)
    if outside.any():
        x, y = pts[outside][0]
        raise PromptError(f"point {x:g},{y:g} lies outside the {width}x{height} image")
    return pts, lab.astype(np.int64)


def point_prompts(
    points: object | None, labels: object | None, image_size: tuple[int, int], batch: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Points for ``batch`` prompts: (B, N, 2) x,y and (B, N) labels, or None without points.

    ``points`` is (N, 2), shared by every box, or (B, N, 2), one set per box; the one place
    where a prompt's points are parsed (the predictor, the CLI and the GUI all come here).
    """
    if points is None and labels is None:
        return None
    if points is None or labels is None:
        raise PromptError("points and point labels must be given together")
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PromptError(f"points must be x,y number pairs ({exc})") from exc
    per_box = arr.ndim == 3
    if per_box and arr.shape[0] != batch:
        raise PromptError(f"{arr.shape[0]} point sets for {batch} boxes")
    pts, lab = validate_points(arr, labels, image_size)
    n = arr.shape[1] if per_box else len(pts)
    pts, lab = pts.reshape(-1, n, 2), lab.reshape(-1, n)
    if not per_box:
        pts, lab = np.repeat(pts, batch, 0), np.repeat(lab, batch, 0)
    return pts, lab
