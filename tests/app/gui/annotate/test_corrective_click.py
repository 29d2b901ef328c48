"""A corrective click in the window edits the mask around it only (engine.predict.focus): the
user's report was a negative click on a blob that grew the blob and drew islands in the corners."""

from __future__ import annotations

import numpy as np

from engine.predict.focus import FOCUS_RADIUS
from tests.app.conftest import click, drag_box, wait_settled
from tests.app.gui.annotate.conftest import copy_cxrs, ground_truth


def test_a_negative_click_changes_nothing_far_from_it(qtbot, shipped_model, cxr_dir, tmp_path, make_window):
    from PySide6.QtCore import Qt

    [path] = copy_cxrs(cxr_dir, tmp_path / "cases", 1)
    truth = ground_truth(cxr_dir, path.name)
    ys, xs = np.nonzero(truth)
    window = make_window([tmp_path / "cases"], model=shipped_model)
    drag_box(qtbot, window, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    wait_settled(qtbot, window)
    label = window.annotator.label
    before = window.annotator.session.masks[label].copy()
    inside = np.argwhere(before)
    y, x = inside[len(inside) // 2]  # a pixel the model drew: the user says "not lung"
    click(window, x + 0.5, y + 0.5, button=Qt.MouseButton.RightButton)
    wait_settled(qtbot, window)
    after = window.annotator.session.masks[label]
    assert window.annotator.session.prompt(label).point_labels == [0]
    h, w = before.shape
    yy, xx = np.mgrid[:h, :w]
    reach = FOCUS_RADIUS * max(h, w) * 1.1  # the disk, plus the upsampling's blur
    far = (yy - y) ** 2 + (xx - x) ** 2 > reach**2
    assert (after != before).any()
    assert np.array_equal(after[far], before[far])
    assert not after[y, x] or after.sum() < before.sum()
