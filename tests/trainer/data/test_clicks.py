"""Simulated corrective clicks and points-only prompts (trainer.data.clicks)."""

from __future__ import annotations

import numpy as np

from trainer.data.clicks import corrective_click, region_points


def disc(shape, cx, cy, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def test_click_lands_in_the_centre_of_the_missed_region_and_is_positive():
    truth = disc((64, 64), 20, 30, 10) | disc((64, 64), 45, 30, 8)
    pred = disc((64, 64), 20, 30, 10)  # the right-hand disc is missed
    x, y, label = corrective_click(pred, truth)
    assert label == 1
    assert abs(x - 45.5) <= 1.0 and abs(y - 30.5) <= 1.0


def test_click_on_drawn_non_lung_is_negative_and_largest_region_wins():
    truth = disc((64, 64), 20, 30, 10)
    pred = truth | disc((64, 64), 50, 50, 6) | disc((64, 64), 50, 10, 2)  # two extra blobs
    x, y, label = corrective_click(pred, truth)
    assert label == 0
    assert abs(x - 50.5) <= 1.0 and abs(y - 50.5) <= 1.0


def test_no_click_when_the_mask_is_right():
    truth = disc((32, 32), 16, 16, 8)
    assert corrective_click(truth.copy(), truth) is None


def test_random_clicks_stay_inside_the_error_region():
    truth = disc((64, 64), 32, 32, 20)
    pred = disc((64, 64), 32, 32, 12)
    rng = np.random.default_rng(0)
    for _ in range(50):
        x, y, label = corrective_click(pred, truth, rng)
        assert label == 1 and truth[int(y), int(x)] and not pred[int(y), int(x)]


def test_region_points_give_one_positive_click_per_lung_inside_it():
    left, right = disc((64, 64), 18, 32, 9), disc((64, 64), 46, 32, 9)
    rng = np.random.default_rng(1)
    clicks = region_points(left | right, rng)
    assert len(clicks) == 2 and all(label == 1 for *_, label in clicks)
    hits = {("left" if left[int(y), int(x)] else "right") for x, y, _ in clicks}
    assert hits == {"left", "right"}
    assert len(region_points(left, rng)) == 1
