"""Per-image metrics on hand-made masks: exact values, HD95 geometry, units, empty masks."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from trainer.evaluation import boundary, dice, hd95, iou, mask_metrics, precision, recall


def _square(shape=(64, 64), top=10, left=10, size=20) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top : top + size, left : left + size] = True
    return mask


def test_overlap_metrics_have_exact_values():
    gt = np.zeros((10, 10), bool)
    gt[0:4, 0:5] = True  # 20 px
    pred = np.zeros((10, 10), bool)
    pred[2:6, 0:5] = True  # 20 px, 10 overlap
    assert dice(pred, gt) == pytest.approx(2 * 10 / 40)
    assert iou(pred, gt) == pytest.approx(10 / 30)
    assert precision(pred, gt) == pytest.approx(10 / 20)
    pred[2:8, 0:5] = True  # now 30 px, still 10 overlap
    assert precision(pred, gt) == pytest.approx(10 / 30)
    assert recall(pred, gt) == pytest.approx(10 / 20)
    m = mask_metrics(pred, gt)
    assert (m.dice, m.iou) == pytest.approx((20 / 50, 10 / 40))


def test_identical_masks_score_perfectly_with_zero_hd95():
    gt = _square()
    m = mask_metrics(gt, gt.copy())
    assert (m.dice, m.iou, m.precision, m.recall, m.hd95) == (1.0, 1.0, 1.0, 1.0, 0.0)
    assert m.hd95_unit == "px"


@pytest.mark.parametrize("shift", [1, 3, 5])
def test_hd95_of_shifted_squares_equals_the_shift(shift):
    gt = _square(size=30)
    pred = np.roll(gt, shift, axis=1)
    assert hd95(pred, gt) == pytest.approx(shift)
    assert hd95(np.roll(gt, shift, axis=0), gt) == pytest.approx(shift)


def test_hd95_is_symmetric():
    gt = _square(size=30)
    pred = _square(top=12, left=8, size=24)
    assert hd95(pred, gt) == pytest.approx(hd95(gt, pred))


def test_hd95_uses_anisotropic_pixel_spacing_in_mm():
    gt = _square(size=30)
    across = np.roll(gt, 4, axis=1)  # columns: 0.25 mm each
    down = np.roll(gt, 4, axis=0)  # rows: 0.5 mm each
    spacing = (0.5, 0.25)
    assert hd95(across, gt, spacing) == pytest.approx(4 * 0.25)
    assert hd95(down, gt, spacing) == pytest.approx(4 * 0.5)
    m = mask_metrics(down, gt, spacing)
    assert m.hd95_unit == "mm" and m.hd95 == pytest.approx(2.0)


def test_hd95_cropping_does_not_change_distances():
    """The bounding-box crop is exact: the same pair placed anywhere gives the same HD95."""
    rng = np.random.default_rng(0)
    gt = np.zeros((80, 80), bool)
    gt[20:50, 15:45] = rng.random((30, 30)) > 0.2
    pred = np.roll(gt, (2, -3), axis=(0, 1))
    big_gt = np.pad(gt, ((40, 7), (3, 60)))
    big_pred = np.pad(pred, ((40, 7), (3, 60)))
    assert hd95(big_pred, big_gt) == pytest.approx(hd95(pred, gt))


def test_both_empty_is_perfect_agreement():
    empty = np.zeros((16, 16), bool)
    m = mask_metrics(empty, empty)
    assert (m.dice, m.iou, m.precision, m.recall, m.hd95) == (1.0, 1.0, 1.0, 1.0, 0.0)


def test_one_empty_mask_scores_zero_and_hd95_is_nan():
    empty = np.zeros((32, 32), bool)
    lung = _square((32, 32), 4, 4, 10)
    missed = mask_metrics(empty, lung)  # model found nothing
    assert (missed.dice, missed.iou, missed.precision, missed.recall) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(missed.hd95)
    hallucinated = mask_metrics(lung, empty)
    assert (hallucinated.dice, hallucinated.precision, hallucinated.recall) == (0.0, 0.0, 0.0)
    assert math.isnan(hallucinated.hd95)


def test_boundary_of_a_square_is_its_outline():
    sq = _square((12, 12), 2, 2, 6)
    edge = boundary(sq)
    assert edge.sum() == 4 * 6 - 4
    assert not edge[3:7, 3:7].any()
    full = np.ones((5, 5), bool)
    assert boundary(full).sum() == 16  # the image border counts as outside


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


def test_metrics_of_a_1024_image_take_tens_of_milliseconds():
    yy, xx = np.mgrid[:1024, :1024]
    gt = ((xx - 300) / 180.0) ** 2 + ((yy - 500) / 330.0) ** 2 < 1
    gt |= ((xx - 720) / 170.0) ** 2 + ((yy - 510) / 320.0) ** 2 < 1
    pred = np.roll(gt, (6, -4), axis=(0, 1))
    mask_metrics(pred, gt)
    best = min(_timed(lambda: mask_metrics(pred, gt)) for _ in range(3))
    assert best < 0.15  # ~25 ms on a quiet core; generous for a busy CI machine


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- found by mutation testing (tools/mutation.sh) --------------------------------------------


def _reference_hd95(p: np.ndarray, g: np.ndarray, spacing=(1.0, 1.0)) -> float:
    """Brute force on the whole array: every boundary pixel to every other mask's boundary."""
    pb, gb = np.argwhere(boundary(p)) * spacing, np.argwhere(boundary(g)) * spacing
    d = np.sqrt(((pb[:, None, :] - gb[None, :, :]) ** 2).sum(-1))
    return float(np.percentile(np.concatenate([d.min(1), d.min(0)]), 95))


def test_hd95_equals_brute_force_on_blobs_reaching_every_edge_of_their_box():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:40, :36]
    for _ in range(6):
        blobs = []
        for _ in range(2):
            cy, cx, ry, rx = rng.uniform(10, 26), rng.uniform(10, 24), rng.uniform(3, 9), rng.uniform(3, 9)
            blobs.append(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1)
        p, g = blobs
        g[int(g.nonzero()[0].max()) + 1 :, :][:1, 5:7] = True  # a spur under g's lowest row
        for spacing in (None, (0.5, 2.0)):
            expected = _reference_hd95(p, g, spacing or (1.0, 1.0))
            assert hd95(p, g, spacing) == pytest.approx(expected, rel=1e-9), spacing


def test_integer_masks_count_every_nonzero_pixel():
    p, g = _square(), _square(top=14, left=12)
    for dtype, on in ((np.uint8, 1), (np.uint8, 255), (np.int32, 1), (np.float32, 0.5)):
        pi, gi = p.astype(dtype) * dtype(on), g.astype(dtype) * dtype(on)
        assert dice(pi, gi) == dice(p, g) and iou(pi, gi) == iou(p, g), (dtype, on)
        assert mask_metrics(pi, gi).as_dict() == mask_metrics(p, g).as_dict()
    assert dice(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)) == 1.0


def test_mask_metrics_equal_the_single_metrics_when_fp_and_fn_differ():
    p, g = _square(size=20), _square(top=22, left=13, size=12)  # |P| = 400, |G| = 144
    tp = int((p & g).sum())
    assert 0 < tp and p.sum() - tp != g.sum() - tp > 0, "false positives and negatives, unequal"
    m = mask_metrics(p, g)
    assert (m.dice, m.iou, m.precision, m.recall) == (dice(p, g), iou(p, g), precision(p, g), recall(p, g))
    assert m.recall == tp / g.sum() and m.precision == tp / p.sum()
    assert m.hd95 == hd95(p, g) and m.hd95_unit == "px"
    assert mask_metrics(p, g, (0.5, 0.5)).hd95_unit == "mm"


# --- found by mutation testing (tools/mutation.sh trainer/evaluation/metrics.py) -----------


def test_each_single_metric_of_two_empty_masks_is_perfect_agreement():
    empty = np.zeros((8, 8), bool)
    assert (dice(empty, empty), iou(empty, empty), precision(empty, empty), recall(empty, empty)) == (1.0,) * 4
    lung = _square((8, 8), 2, 2, 3)
    assert recall(lung, empty) == 0.0 and precision(empty, lung) == 0.0  # one side empty: no agreement


@pytest.mark.parametrize("spacing", [(0.0, 1.0), (1.0, 0.0), (-0.5, 1.0), (float("nan"), 1.0), (1.0, float("inf"))])
def test_pixel_spacing_must_be_two_positive_finite_numbers(spacing):
    lung = _square((16, 16), 4, 4, 6)
    with pytest.raises(ValueError, match="pixel spacing must be two positive numbers"):
        hd95(lung, lung, spacing)


def test_a_pixel_spacing_below_one_millimetre_is_fine():
    lung = _square((16, 16), 4, 4, 6)
    shifted = _square((16, 16), 4, 6, 6)
    assert hd95(lung, shifted, (0.5, 0.25)) == pytest.approx(2 * 0.25)


def test_a_score_cannot_be_altered_after_it_was_measured():
    import dataclasses

    lung = _square((16, 16), 4, 4, 6)
    scores = mask_metrics(lung, lung)
    with pytest.raises(dataclasses.FrozenInstanceError):
        scores.dice = 0.5  # type: ignore[misc]
