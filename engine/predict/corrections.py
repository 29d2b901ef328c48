"""A box's mask after corrective clicks, as the window draws it: box first, then each click in
order, fed the previous low-res logits, editing only around itself (:mod:`engine.predict.focus`).

``lungsam segment --box ... --point ...`` and ``lungsam eval --clicks`` give what a user of the
window would get for the same box and the same clicks in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.predict.focus import keep_outside_focus
from engine.predict.predictor import Prediction, Predictor


def click_correction(predictor: Predictor, box: np.ndarray, points: Sequence[tuple[float, float]],
                     labels: Sequence[int], previous: Prediction, shown: np.ndarray,
                     style: str | int | None = None) -> tuple[Prediction, np.ndarray]:
    """One more click (the last of ``points``) on the mask ``shown`` (bool H x W) that came with
    ``previous``: (the model's prediction, the mask as shown now)."""
    result = predictor.predict(boxes=box, points=np.asarray(points, dtype=np.float64), point_labels=np.asarray(labels),
                               mask_input=previous.low_res_logits[:1], style=style, focus=True)
    x, y = points[-1]
    return result, keep_outside_focus(shown, result.masks[0, 0], (float(x), float(y)))


def box_then_clicks(predictor: Predictor, box: np.ndarray, points: Sequence[tuple[float, float]],
                    labels: Sequence[int], style: str | int | None = None) -> np.ndarray:
    """bool H x W: the mask of ``box`` (x0 y0 x1 y1) after ``points`` (x, y; original pixels)
    with ``labels`` (1 lung, 0 not lung) clicked one after the other on the predictor's image."""
    result = predictor.predict(boxes=box, style=style)
    shown = result.masks[0, 0]
    for k in range(1, len(points) + 1):
        result, shown = click_correction(predictor, box, points[:k], labels[:k], result, shown, style)
    return shown
