"""Zero-click proposals: refinement to the model's own tight box, one lung per pixel, the
fallback without a box head, and "no lung" as a status, not a crash."""

from __future__ import annotations

import numpy as np
import pytest

from engine.predict import Prediction
from engine.propose import main_parts, propose_lungs, split_lungs, tight_box


def _lung(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros((h, w), bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


class FakePredictor:
    """Draws, for each box, the true lung it overlaps most, clipped to the box grown by
    ``grow`` px: so a box that is too small gives a mask that reaches its edge, and the next
    box (its tight box) is larger, like a real SAM that sees lung beyond the box."""

    def __init__(self, lungs: list[np.ndarray], head: np.ndarray | None, grow: int = 6) -> None:
        self.lungs, self.head, self.grow = lungs, head, grow
        self.original_size = lungs[0].shape
        self.calls: list[np.ndarray] = []

    def head_boxes(self) -> np.ndarray | None:
        return self.head

    def predict(self, boxes, style=None) -> Prediction:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        self.calls.append(boxes)
        h, w = self.original_size
        masks = []
        for b in boxes:
            window = _lung(h, w, (max(0, int(b[0]) - self.grow), max(0, int(b[1]) - self.grow),
                                  int(b[2]) + self.grow, int(b[3]) + self.grow))
            overlap = [np.sum(lung & window) for lung in self.lungs]
            if all(o > 0.9 * lung.sum() > 0 for o, lung in zip(overlap, self.lungs, strict=True)):
                masks.append(np.logical_or.reduce(self.lungs) & window)  # a box around both
                continue
            masks.append(self.lungs[int(np.argmax(overlap))] & window)
        m = np.stack(masks)[:, None]
        return Prediction(m, np.full((len(boxes), 1), 0.9), np.zeros((len(boxes), 1, 8, 8), np.float32), 0.0)


H, W = 120, 160
RIGHT_LUNG = _lung(H, W, (20, 20, 70, 100))  # on the image's left
LEFT_LUNG = _lung(H, W, (90, 25, 140, 105))


def test_refinement_reaches_the_tight_box_of_each_lung():
    head = np.array([[10, 10, 150, 110], [30, 30, 60, 90], [100, 35, 130, 95]], float)  # too small
    proposal = propose_lungs(FakePredictor([RIGHT_LUNG, LEFT_LUNG], head), refine_steps=4)
    assert proposal.source == "box head"
    assert np.array_equal(proposal.lung_boxes[0], tight_box(RIGHT_LUNG))
    assert np.array_equal(proposal.lung_boxes[1], tight_box(LEFT_LUNG))
    assert np.array_equal(proposal.masks[0], RIGHT_LUNG) and np.array_equal(proposal.masks[1], LEFT_LUNG)
    assert proposal.found and proposal.problem is None


def test_no_refinement_keeps_the_first_guess():
    head = np.array([[10, 10, 150, 110], [30, 30, 60, 90], [100, 35, 130, 95]], float)
    proposal = propose_lungs(FakePredictor([RIGHT_LUNG, LEFT_LUNG], head), refine_steps=0)
    assert np.array_equal(proposal.lung_boxes, head[1:3])


def test_without_a_box_head_the_whole_image_is_split_into_two_lungs():
    fake = FakePredictor([RIGHT_LUNG, LEFT_LUNG], None)
    proposal = propose_lungs(fake)
    assert proposal.source == "whole image"
    assert np.array_equal(fake.calls[0][0], [0, 0, W, H])
    assert np.array_equal(proposal.masks[0], RIGHT_LUNG) and np.array_equal(proposal.masks[1], LEFT_LUNG)


def test_a_pixel_belongs_to_one_lung_only():
    touching_a = _lung(H, W, (20, 20, 85, 100))
    touching_b = _lung(H, W, (75, 20, 140, 100))
    head = np.array([[0, 0, W, H], [20, 20, 85, 100], [75, 20, 140, 100]], float)
    proposal = propose_lungs(FakePredictor([touching_a, touching_b], head, grow=0), refine_steps=0)
    assert not (proposal.masks[0] & proposal.masks[1]).any()
    assert (proposal.masks[0] | proposal.masks[1]).sum() == (touching_a | touching_b).sum()
    assert proposal.masks[0][50, 76] and proposal.masks[1][50, 84]  # each side to the nearer lung


def test_no_lung_is_a_status_not_a_crash():
    empty = np.zeros((H, W), bool)
    head = np.array([[0, 0, W, H], [10, 10, 60, 90], [90, 10, 150, 90]], float)
    proposal = propose_lungs(FakePredictor([empty, empty], head))
    assert not proposal.found
    assert proposal.problem == "no lung was found in this image"
    assert proposal.union_box is None


def test_one_missing_lung_is_named_as_the_patients_lung():
    empty = np.zeros((H, W), bool)
    head = np.array([[0, 0, W, H], [20, 20, 70, 100], [90, 25, 140, 105]], float)
    proposal = propose_lungs(FakePredictor([RIGHT_LUNG, empty], head, grow=0), refine_steps=0)
    # the lung on the image's right is the patient's left
    assert not proposal.found and "patient's left lung" in proposal.problem


def test_specks_do_not_stretch_a_box():
    mask = RIGHT_LUNG.copy()
    mask[2:4, 150:152] = True
    assert np.array_equal(tight_box(main_parts(mask)), tight_box(RIGHT_LUNG))


@pytest.mark.parametrize("touching", [False, True])
def test_split_lungs_orders_by_image_side(touching):
    a = _lung(H, W, (20, 20, 80 if touching else 70, 100))
    b = _lung(H, W, (80 if touching else 90, 25, 140, 105))
    left, right = split_lungs(a | b)
    assert left[50, 30] and right[50, 120] and not (left & right).any()
