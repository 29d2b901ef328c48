"""Masks and paths shared by the project-store tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
KILL_SAVER = Path(__file__).with_name("kill_saver.py")
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}



def lung_masks(height: int = 48, width: int = 40, shift: int = 0) -> dict[str, np.ndarray]:
    """Right lung on the image's left, left lung on the image's right (patient's view)."""
    yy, xx = np.mgrid[:height, :width]
    right = ((xx - 0.3 * width - shift) / (0.15 * width)) ** 2 + (
        (yy - height / 2) / (0.3 * height)
    ) ** 2 < 1
    left = ((xx - 0.7 * width - shift) / (0.15 * width)) ** 2 + (
        (yy - height / 2) / (0.3 * height)
    ) ** 2 < 1
    return {"lungs": right | left, "right lung": right, "left lung": left}
