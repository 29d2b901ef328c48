"""Quality signals: each one moves the way its docstring says, on masks where the answer is known."""

from __future__ import annotations

import numpy as np

from engine.propose import LungProposal, quality_score, quality_signals
from engine.propose.quality import stability_score

H, W = 64, 64


def _box_mask(box, h=H, w=W):
    m = np.zeros((h, w), bool)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    m[y0:y1, x0:x1] = True
    return m


class LowResFake:
    """Low-res masks in the same frame as the image (64 px): either the fixed lung whatever
    the box (a confident model) or exactly the box (a model that only copies the box)."""

    original_size = (H, W)

    def __init__(self, follows_box: bool, lungs: list[np.ndarray]) -> None:
        self.follows_box, self.lungs = follows_box, lungs

    def predict_low_res(self, boxes, style=None):
        boxes = np.asarray(boxes).reshape(-1, 4)
        out = []
        for i, b in enumerate(boxes):
            mask = _box_mask(b) if self.follows_box else self.lungs[i % 2]
            out.append(np.where(mask, 8.0, -8.0))
        return np.stack(out), np.full(len(boxes), 0.9)


def _proposal(lungs, boxes, logits=None, scores=(0.9, 0.9), found=True) -> LungProposal:
    logits = np.stack([np.where(m, 8.0, -8.0) for m in lungs]) if logits is None else logits
    return LungProposal(np.asarray(boxes, float), np.stack(lungs), np.asarray(scores), logits, found,
                        None if found else "no lung was found in this image", "box head", 0.0, [])


LEFT_BOX, RIGHT_BOX = [6, 8, 28, 56], [36, 8, 58, 56]
LEFT, RIGHT = _box_mask(LEFT_BOX), _box_mask(RIGHT_BOX)


def test_a_mask_that_ignores_small_box_moves_is_trusted_more_than_one_that_follows_them():
    prop = _proposal([LEFT, RIGHT], [LEFT_BOX, RIGHT_BOX])
    steady = quality_signals(LowResFake(False, [LEFT, RIGHT]), prop)
    follows = quality_signals(LowResFake(True, [LEFT, RIGHT]), prop)
    assert steady.jitter == 1.0
    assert follows.jitter < 0.95


def test_box_fill_drops_when_the_mask_covers_half_its_box():
    half = LEFT.copy()
    half[:, 17:] = False
    full = quality_signals(LowResFake(False, [LEFT, RIGHT]), _proposal([LEFT, RIGHT], [LEFT_BOX, RIGHT_BOX]))
    part = quality_signals(LowResFake(False, [half, RIGHT]), _proposal([half, RIGHT], [LEFT_BOX, RIGHT_BOX]))
    assert full.box_fill == 1.0
    assert 0.4 < part.box_fill < 0.6


def test_balance_is_the_smaller_lung_over_the_larger():
    small = _box_mask([6, 8, 17, 56])
    s = quality_signals(LowResFake(False, [small, RIGHT]), _proposal([small, RIGHT], [LEFT_BOX, RIGHT_BOX]))
    assert abs(s.balance - small.sum() / RIGHT.sum()) < 1e-9


def test_stability_sees_logits_near_the_threshold():
    sure = np.where(LEFT, 8.0, -8.0)
    unsure = np.where(LEFT, 0.5, -0.5)
    assert stability_score(sure) == 1.0
    assert stability_score(unsure) == 0.0


def test_iou_pred_is_the_lower_lung_clipped_to_one():
    prop = _proposal([LEFT, RIGHT], [LEFT_BOX, RIGHT_BOX], scores=(1.3, 0.7))
    assert quality_signals(LowResFake(False, [LEFT, RIGHT]), prop).iou_pred == 0.7


def test_nothing_found_scores_zero_and_scores_stay_in_unit_range():
    prop = _proposal([LEFT, RIGHT], [LEFT_BOX, RIGHT_BOX])
    signals = quality_signals(LowResFake(True, [LEFT, RIGHT]), prop)
    assert quality_score(signals, found=False) == 0.0
    assert 0.0 <= quality_score(signals) <= 1.0


def test_the_score_is_the_geometric_mean_of_jitter_stability_and_iou():
    from engine.propose import QualitySignals

    s = QualitySignals(iou_pred=0.8, stability=0.5, jitter=0.4, box_fill=0.1, balance=0.1)
    assert abs(quality_score(s) - (0.8 * 0.5 * 0.4) ** (1 / 3)) < 1e-12
    worse = QualitySignals(iou_pred=0.8, stability=0.5, jitter=0.2, box_fill=0.1, balance=0.1)
    assert quality_score(worse) < quality_score(s)
