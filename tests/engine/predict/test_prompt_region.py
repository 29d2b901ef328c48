"""Masks respect their prompt (engine.predict.prompt_region)."""

from __future__ import annotations

import numpy as np

from engine.predict.prompt_region import box_margin, restrict_mask


def test_island_outside_the_box_is_removed_border_inside_the_margin_kept():
    mask = np.zeros((100, 100), bool)
    mask[20:60, 20:60] = True  # the lung, drawn 2 px past the box's right edge
    mask[90:95, 90:95] = True  # an island in the corner
    box = np.array([20.0, 20.0, 58.0, 60.0])
    out = restrict_mask(mask, box, np.zeros((0, 2)))
    assert out[20:60, 20:60].all() and not out[90:, 90:].any()
    assert box_margin(box) >= 4


def test_positive_click_outside_the_box_keeps_its_part():
    mask = np.zeros((100, 100), bool)
    mask[20:60, 20:60] = True
    mask[80:95, 5:15] = True  # a missed costophrenic angle the user clicked
    box = np.array([20.0, 20.0, 60.0, 60.0])
    out = restrict_mask(mask, box, np.array([[10.0, 88.0]]))
    assert out[80:95, 5:15].all() and out[20:60, 20:60].all()


def test_points_only_keeps_clicked_and_large_parts_and_drops_specks():
    mask = np.zeros((100, 100), bool)
    mask[10:80, 10:40] = True  # clicked lung
    mask[10:75, 60:90] = True  # the other lung, large
    mask[95:97, 95:97] = True  # a speck
    out = restrict_mask(mask, None, np.array([[20.0, 30.0]]))
    assert out[10:80, 10:40].all() and out[10:75, 60:90].all() and not out[95:, 95:].any()
