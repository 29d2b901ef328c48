"""Split a both-lungs mask into image-left / image-right lungs and derive box prompts.

Radiological convention: the patient's LEFT lung appears on the image's RIGHT. Label 1 is
the lung on the image's left (patient right), label 2 the lung on the image's right
(patient left).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from engine.measure import tight_box

IMAGE_LEFT, IMAGE_RIGHT = 1, 2


def split_lungs(mask: np.ndarray) -> np.ndarray:
    """uint8 label map (0, 1, 2) from a binary both-lungs mask.

    The two largest connected components are the lungs, ordered by centroid x; smaller
    fragments join the lung on their side. If the lungs touch (one component), the
    component is cut at the emptiest column of its middle third.
    """
    binary = mask > 0
    if not binary.any():
        return np.zeros(binary.shape, np.uint8)
    comp, n = ndimage.label(binary)
    sizes = ndimage.sum(binary, comp, index=np.arange(1, n + 1))
    order = np.argsort(sizes)[::-1] + 1
    two_lungs = n >= 2 and sizes[order[1] - 1] >= 0.1 * sizes[order[0] - 1]
    if two_lungs:
        centroids = ndimage.center_of_mass(binary, comp, index=[order[0], order[1]])
        cut = (centroids[0][1] + centroids[1][1]) / 2.0
    else:
        cut = _split_column(comp == order[0])
    # Whole components go to one side, so a fragment is never split down the middle...
    comp_x = ndimage.center_of_mass(binary, comp, index=np.arange(1, n + 1))
    side_of = np.array([0] + [IMAGE_LEFT if cx < cut else IMAGE_RIGHT for _, cx in comp_x], np.uint8)
    labels = side_of[comp]
    if not two_lungs:  # ...except touching lungs, which are cut at the emptiest column.
        yy, xx = np.nonzero(comp == order[0])
        labels[yy, xx] = np.where(xx < cut, IMAGE_LEFT, IMAGE_RIGHT)
    return labels


def _split_column(component: np.ndarray) -> float:
    cols = np.nonzero(component.any(axis=0))[0]
    x0, x1 = cols.min(), cols.max()
    lo, hi = x0 + (x1 - x0) // 3, x0 + 2 * (x1 - x0) // 3
    if hi <= lo:
        return (x0 + x1) / 2.0
    counts = component[:, lo : hi + 1].sum(axis=0)
    return float(lo + int(np.argmin(counts)))


def labels_from_masks(union: np.ndarray, left: np.ndarray | None, right: np.ndarray | None) -> np.ndarray:
    """Label map from explicit per-lung masks when a data set has them.

    ``left``/``right`` are the PATIENT's lungs (masks_left/ masks_right/ folders), so the
    patient's left lung becomes label IMAGE_RIGHT.
    """
    if left is None or right is None:
        return split_lungs(union)
    labels = np.zeros(union.shape, np.uint8)
    labels[right > 0] = IMAGE_LEFT
    labels[left > 0] = IMAGE_RIGHT
    rest = (union > 0) & (labels == 0)
    if rest.any():
        split = split_lungs(union)
        labels[rest] = split[rest]
    return labels


box_of = tight_box  # the tight box of a lung label (one definition: engine.measure.extent)
