"""Per-image segmentation metrics: Dice, IoU, precision, recall and HD95.

All functions take two boolean masks of the same shape (prediction, ground truth) at the
image's ORIGINAL resolution, so distances are in that image's pixels (or millimetres).

Empty-mask conventions (the same for every overlap metric, so means stay comparable):

* both masks empty: Dice = IoU = precision = recall = 1 (perfect agreement), HD95 = 0;
* exactly one empty: Dice = IoU = 0, and the undefined ratio among precision/recall is 0
  (an empty prediction of a present lung is a miss, not a vacuous success); HD95 = NaN
  because no distance exists. Summaries exclude NaN from means and count them
  (``n_nan``), so a missed lung is visible rather than silently averaged away.

HD95: the 95th percentile of the pooled symmetric boundary distances (every boundary
pixel of the prediction to the nearest ground-truth boundary pixel, and vice versa), as in
MedPy's ``hd95``. Boundary pixels are mask pixels with a 4-neighbour outside the mask (the
image border counts as outside). Distances come from the feature transform of
``scipy.ndimage.distance_transform_edt`` with ``sampling=pixel_spacing`` (row mm, col mm), so
anisotropic pixels are handled exactly; without spacing they are in pixels. Both transforms
run on the bounding box of the two masks only, which is exact (every boundary pixel lies
inside it) and several times faster: ~25 ms for a 1024 x 1024 pair on one core.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "MaskMetrics",
    "boundary",
    "dice",
    "hd95",
    "iou",
    "mask_metrics",
    "precision",
    "recall",
]

HD95_PERCENTILE = 95.0


@dataclass(frozen=True)
class MaskMetrics:
    """One image's scores; ``hd95_unit`` is ``"mm"`` when pixel spacing was known, else ``"px"``."""

    dice: float
    iou: float
    precision: float
    recall: float
    hd95: float
    hd95_unit: str

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


def _as_bool(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = np.asarray(pred), np.asarray(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in shape")
    if p.ndim != 2:
        raise ValueError(f"masks must be 2-D (H x W), got {p.ndim}-D")
    return (p if p.dtype == np.bool_ else p > 0), (g if g.dtype == np.bool_ else g > 0)


def _counts(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) in pixels."""
    p, g = _as_bool(pred, gt)
    tp = int(np.count_nonzero(p & g))
    return tp, int(np.count_nonzero(p)) - tp, int(np.count_nonzero(g)) - tp


def _ratio(num: int, den: int, both_empty: bool) -> float:
    if den == 0:
        return 1.0 if both_empty else 0.0
    return num / den


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """2|P & G| / (|P| + |G|); both empty -> 1."""
    tp, fp, fn = _counts(pred, gt)
    return _ratio(2 * tp, 2 * tp + fp + fn, True)


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """|P & G| / |P | G|; both empty -> 1."""
    tp, fp, fn = _counts(pred, gt)
    return _ratio(tp, tp + fp + fn, True)


def precision(pred: np.ndarray, gt: np.ndarray) -> float:
    """|P & G| / |P|; empty prediction -> 1 if the ground truth is empty too, else 0."""
    tp, fp, fn = _counts(pred, gt)
    return _ratio(tp, tp + fp, fn == 0)


def recall(pred: np.ndarray, gt: np.ndarray) -> float:
    """|P & G| / |G|; empty ground truth -> 1 if the prediction is empty too, else 0."""
    tp, fp, fn = _counts(pred, gt)
    return _ratio(tp, tp + fn, fp == 0)


def _bbox(mask: np.ndarray) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with at least one 4-neighbour outside the mask (or outside the array)."""
    m = np.asarray(mask, dtype=bool)
    padded = np.pad(m, 1)
    interior = (
        padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    )
    return m & ~interior


def _spacing(pixel_spacing: tuple[float, float] | None) -> tuple[float, float] | None:
    if pixel_spacing is None:
        return None
    row, col = (float(v) for v in pixel_spacing)
    if not (np.isfinite(row) and np.isfinite(col) and row > 0 and col > 0):
        raise ValueError(f"pixel spacing must be two positive numbers, got {pixel_spacing}")
    return row, col


def hd95(
    pred: np.ndarray, gt: np.ndarray, pixel_spacing: tuple[float, float] | None = None
) -> float:
    """95th-percentile symmetric boundary distance; mm with ``pixel_spacing`` (row, col), else px.

    Both empty -> 0.0; exactly one empty -> NaN (see module docstring).
    """
    p, g = _as_bool(pred, gt)
    spacing = _spacing(pixel_spacing)
    box = _bbox(p | g)
    if box is None:
        return 0.0
    p, g = p[box], g[box]
    if not p.any() or not g.any():
        return float("nan")
    pb, gb = boundary(p), boundary(g)
    distances = np.concatenate(
        [_distances_to(gb, pb, spacing), _distances_to(pb, gb, spacing)]
    )
    return float(np.percentile(distances, HD95_PERCENTILE))


def _distances_to(target: np.ndarray, query: np.ndarray, spacing: tuple[float, float] | None) -> np.ndarray:
    """Distance from every ``query`` pixel to the nearest ``target`` pixel (same units as spacing).

    The EDT's feature transform (nearest target pixel per pixel, under ``sampling``) is
    evaluated at the query pixels only: the full distance map would cost more than the
    transform itself and is never needed.
    """
    # distance_transform_edt measures distances to the nearest ZERO, so invert the target.
    nearest = ndimage.distance_transform_edt(
        ~target, sampling=spacing, return_distances=False, return_indices=True
    )
    rows, cols = np.nonzero(query)
    d_row = (nearest[0][rows, cols] - rows).astype(np.float64)
    d_col = (nearest[1][rows, cols] - cols).astype(np.float64)
    if spacing is not None:
        d_row *= spacing[0]
        d_col *= spacing[1]
    return np.hypot(d_row, d_col)


def mask_metrics(
    pred: np.ndarray, gt: np.ndarray, pixel_spacing: tuple[float, float] | None = None
) -> MaskMetrics:
    """All five scores of one prediction against its ground truth (counts computed once)."""
    p, g = _as_bool(pred, gt)
    tp = int(np.count_nonzero(p & g))
    fp, fn = int(np.count_nonzero(p)) - tp, int(np.count_nonzero(g)) - tp
    return MaskMetrics(
        dice=_ratio(2 * tp, 2 * tp + fp + fn, True),
        iou=_ratio(tp, tp + fp + fn, True),
        precision=_ratio(tp, tp + fp, fn == 0),
        recall=_ratio(tp, tp + fn, fp == 0),
        hd95=hd95(p, g, pixel_spacing),
        hd95_unit="px" if pixel_spacing is None else "mm",
    )
