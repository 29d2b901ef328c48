"""Synthetic training data for tests that need a SampleSet but not real images."""

from __future__ import annotations

import numpy as np

from trainer.data import SampleSet


def synthetic_set(size: int, n: int) -> SampleSet:
    """``n`` square images with a left and a right 'lung' (labels 1 and 2) on a darker body;
    the lungs grow a pixel per image, so no two examples are the same."""
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((n, size, size), np.uint8)
    images = np.full((n, size, size, 3), 50, np.uint8)
    for k in range(n):
        for value, cx in ((1, 0.3), (2, 0.7)):
            inside = ((xx - cx * size) / (0.12 * size + k)) ** 2 + ((yy - size / 2) / (0.3 * size)) ** 2 < 1
            labels[k][inside] = value
            images[k][inside] = 190
    sizes = np.full((n, 2), size, np.int64)
    return SampleSet(names=[f"s{k}.png" for k in range(n)], images=images, labels=labels,
                     input_sizes=sizes, original_sizes=sizes.copy())
