"""Box jitter for the quality score: each lung's box moved by a few percent, fixed draws.

A mask that changes a lot when its box moves a little is a guess (:mod:`engine.propose.quality`).
The draws come from a fixed seed so a score replays exactly; the proposer decodes them in the
same decoder pass as the lung boxes themselves (:meth:`engine.predict.Predictor.predict_and_probe`).
"""

from __future__ import annotations

import numpy as np

JITTER_DRAWS = 4
JITTER_FRACTION = 0.05  # of the box side, per edge
JITTER_SEED = 0


def jitter_boxes(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(JITTER_DRAWS * B) x 4 boxes, draw-major (row ``i`` jitters box ``i % B``), each edge of
    each x0 y0 x1 y1 box (original pixels) moved by up to ``JITTER_FRACTION`` of its side,
    clipped to the image (``size`` = height, width)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    rng = np.random.default_rng(JITTER_SEED)
    sides = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1)
    scale = np.concatenate([sides, sides], 1) * JITTER_FRACTION
    h, w = size
    limit = np.array([w, h, w, h], np.float64)
    draws = [np.clip(boxes + rng.uniform(-1, 1, boxes.shape) * scale, 0, limit) for _ in range(JITTER_DRAWS)]
    return np.concatenate(draws)
