"""The extent of a mask: its tight box, the one definition the proposer, the trainer's box
prompts and the COCO export share (original or input-frame pixels, whichever the mask is in)."""

from __future__ import annotations

import numpy as np


def tight_box(mask: np.ndarray) -> np.ndarray | None:
    """x0, y0, x1, y1 (float64; x1/y1 exclusive pixel edges) of a mask's non-zero pixels, or
    None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float64)
