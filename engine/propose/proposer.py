"""Zero-click: propose both lungs on an image with no prompt at all.

The design: a first guess of where each lung is, then the model's own masks tighten it.

1. First guess. With a box head (:mod:`engine.sam.box_head`) the guess is its box per lung.
   Without one (an imported official checkpoint, say), the whole image is the box, its mask's
   tight box is the next box (twice), and that mask is split into the two lungs
   (:func:`split_lungs`): slower to converge and weaker, but it needs nothing trained.
2. Refinement. Each lung is segmented from its box; the tight box of that mask (its large
   parts only, so a speck does not stretch it) becomes the lung's next box, ``refine_steps``
   times. The default depends on the first guess, as measured (``benchmarks/zero_click.py``):
   the box head's boxes are used as they are (each refinement step cost about 0.15 Dice points
   on covidqu_ex/val: the model's masks sit a little inside the lung border, so their tight
   boxes shrink), the whole-image guess is refined twice (from 0.952 to 0.973 on the same set).
3. One pixel, one lung: where the two lungs' masks overlap, the pixel goes to the lung whose
   box centre is nearer.

Everything is in original-image pixels; "image left" is the patient's right lung.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from engine.measure import tight_box
from engine.predict import Predictor
from engine.propose.jitter import jitter_boxes

IMAGE_LEFT, IMAGE_RIGHT = 0, 1  # rows of LungProposal.lung_boxes / masks
MIN_PART_FRACTION = 0.1  # parts smaller than this share of a lung's largest part do not move its box
MIN_LUNG_FRACTION = 0.002  # a lung smaller than this share of the image is "not found"


@dataclass(frozen=True)
class LungProposal:
    """Two lungs proposed on one image.

    ``lung_boxes``: 2 x 4 (image-left, image-right lung; x0 y0 x1 y1, original pixels; the
    boxes the masks were drawn from, a user may edit them); ``masks``: bool 2 x H x W, never
    overlapping; ``scores``: the decoder's predicted IoU per lung; ``found``: False when no
    plausible lung came out (``problem`` says why); ``history``: each step's boxes, so the
    quality score can see how far the model moved them.
    """

    lung_boxes: np.ndarray
    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray
    found: bool
    problem: str | None
    source: str
    seconds: float
    history: list[np.ndarray] = field(default_factory=list)
    jitter_low_res: np.ndarray | None = None  # (JITTER_DRAWS * 2) x h x w, see engine.propose.jitter

    @property
    def union_box(self) -> np.ndarray | None:
        """Tight x0 y0 x1 y1 box of both lungs' masks (None when nothing was found)."""
        return tight_box(self.union)

    @property
    def union(self) -> np.ndarray:
        return np.asarray(self.masks.any(axis=0))


def main_parts(mask: np.ndarray, min_fraction: float = MIN_PART_FRACTION) -> np.ndarray:
    """The mask without parts smaller than ``min_fraction`` of its largest part."""
    count, comp, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    area = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(area >= min_fraction * area.max()) + 1
    return np.isin(comp, keep)


def split_lungs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A both-lungs mask -> (image-left lung, image-right lung): the two largest parts by
    centroid x, or, for one part, a cut at the emptiest column of its middle third."""
    count, comp, stats, cent = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        empty = np.zeros_like(mask, dtype=bool)
        return empty, empty.copy()
    order = np.argsort(stats[1:, cv2.CC_STAT_AREA])[::-1] + 1
    if count >= 3 and stats[order[1], cv2.CC_STAT_AREA] >= 0.1 * stats[order[0], cv2.CC_STAT_AREA]:
        a, b = order[0], order[1]
        left, right = (a, b) if cent[a][0] < cent[b][0] else (b, a)
        return comp == left, comp == right
    part = comp == order[0]
    cols = np.flatnonzero(part.any(axis=0))
    lo, hi = cols[0] + (cols[-1] - cols[0]) // 3, cols[0] + 2 * (cols[-1] - cols[0]) // 3
    cut = lo + int(np.argmin(part[:, lo : hi + 1].sum(axis=0))) if hi > lo else (cols[0] + cols[-1]) // 2
    left, right = part.copy(), part.copy()
    left[:, cut:] = False
    right[:, :cut] = False
    return left, right


def _first_boxes(predictor: Predictor, style: str | None) -> tuple[np.ndarray, str, list[np.ndarray]]:
    """2 x 4 first-guess lung boxes and where they came from."""
    head = predictor.head_boxes()
    if head is not None:
        return head[1:3], "box head", [head[1:3]]
    h, w = predictor.original_size
    box = np.array([0.0, 0.0, w, h])
    history = []
    mask = np.zeros((h, w), bool)
    for _ in range(3):
        mask = main_parts(predictor.predict(boxes=box, style=style).masks[0, 0])
        history.append(box[None].copy())
        nxt = tight_box(mask)
        if nxt is None:
            break
        box = nxt
    left, right = split_lungs(mask)
    boxes = []
    for lung, half in ((left, (0.0, 0.0, w / 2, h)), (right, (w / 2, 0.0, w, h))):
        tb = tight_box(lung)
        boxes.append(tb if tb is not None else np.asarray(half))
    return np.asarray(boxes), "whole image", history


def _one_lung_per_pixel(masks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    both = masks[0] & masks[1]
    if not both.any():
        return masks
    ys, xs = np.nonzero(both)
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    d0 = (xs - centres[0, 0]) ** 2 + (ys - centres[0, 1]) ** 2
    d1 = (xs - centres[1, 0]) ** 2 + (ys - centres[1, 1]) ** 2
    out = masks.copy()
    to_left = d0 <= d1
    out[1, ys[to_left], xs[to_left]] = False
    out[0, ys[~to_left], xs[~to_left]] = False
    return out


HEAD_REFINE_STEPS = 0
FALLBACK_REFINE_STEPS = 2


def propose_lungs(
    predictor: Predictor, style: str | None = None, refine_steps: int | None = None, jitter: bool = False,
) -> LungProposal:
    """Both lungs of the predictor's current image, from no prompt (see the module docstring);
    ``refine_steps`` None = the measured default for where the first guess came from;
    ``jitter``: also decode the final boxes' jittered copies for the quality score, in the
    same decoder pass (``LungProposal.jitter_low_res``)."""
    start = time.perf_counter()
    boxes, source, history = _first_boxes(predictor, style)
    if refine_steps is None:
        refine_steps = HEAD_REFINE_STEPS if source == "box head" else FALLBACK_REFINE_STEPS
    h, w = predictor.original_size
    prediction = None
    jitter_low_res = None
    for step in range(refine_steps + 1):
        if step == refine_steps and jitter:
            prediction, jitter_low_res, _ = predictor.predict_and_probe(boxes, jitter_boxes(boxes, (h, w)), style)
        else:
            prediction = predictor.predict(boxes=boxes, style=style)
        if step == refine_steps:
            break
        new_boxes = boxes.copy()
        for i in range(2):
            tb = tight_box(main_parts(prediction.masks[i, 0]))
            if tb is not None:
                new_boxes[i] = tb
        history.append(boxes.copy())
        if np.allclose(new_boxes, boxes, atol=0.5):
            break
        boxes = new_boxes
    assert prediction is not None
    history.append(boxes.copy())
    masks = _one_lung_per_pixel(prediction.masks[:, 0], boxes)
    problem = None
    min_area = MIN_LUNG_FRACTION * h * w
    small = [name for name, m in zip(("right", "left"), masks, strict=True) if m.sum() < min_area]
    if len(small) == 2:
        problem = "no lung was found in this image"
    elif small:
        problem = f"only one lung was found (the patient's {small[0]} lung is missing)"
    return LungProposal(
        lung_boxes=boxes,
        masks=masks,
        scores=prediction.scores[:, 0],
        low_res_logits=prediction.low_res_logits[:, 0],
        found=problem is None,
        problem=problem,
        source=source,
        seconds=time.perf_counter() - start,
        history=history,
        jitter_low_res=jitter_low_res,
    )
