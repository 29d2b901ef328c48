"""A corrective click in the window edits the mask around it only (engine.predict.focus): the
user's report was a negative click on a blob that grew the blob and drew islands in the corners."""

from __future__ import annotations

import numpy as np

from engine.predict.focus import FOCUS_RADIUS
from tests.app.conftest import click, drag_box, wait_settled
from tests.app.gui.annotate.conftest import copy_cxrs, ground_truth


def _far_from(shape, x, y):
    """Pixels beyond the click's focus disk (plus 10 % for the upsampling's blur)."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    reach = FOCUS_RADIUS * max(h, w) * 1.1
    return (yy - y) ** 2 + (xx - x) ** 2 > reach**2


def _window_with_box(qtbot, make_window, model, cxr_dir, folder, start=0):
    """A window on one real radiograph with its ground-truth box drawn: (window, truth, label)."""
    [path] = copy_cxrs(cxr_dir, folder, 1, start=start)
    truth = ground_truth(cxr_dir, path.name)
    ys, xs = np.nonzero(truth)
    window = make_window([folder], model=model)
    drag_box(qtbot, window, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    wait_settled(qtbot, window)
    return window, truth, window.annotator.label


def test_a_negative_click_changes_nothing_far_from_it(qtbot, shipped_model, cxr_dir, tmp_path, make_window):
    from PySide6.QtCore import Qt

    window, _, label = _window_with_box(qtbot, make_window, shipped_model, cxr_dir, tmp_path / "cases")
    before = window.annotator.session.masks[label].copy()
    inside = np.argwhere(before)
    y, x = inside[len(inside) // 2]  # a pixel the model drew: the user says "not lung"
    click(window, x + 0.5, y + 0.5, button=Qt.MouseButton.RightButton)
    wait_settled(qtbot, window)
    after = window.annotator.session.masks[label]
    assert window.annotator.session.prompt(label).point_labels == [0]
    far = _far_from(before.shape, x, y)
    assert (after != before).any()
    assert np.array_equal(after[far], before[far])
    assert not after[y, x] or after.sum() < before.sum()


def test_a_brush_stroke_far_from_a_later_click_is_kept(qtbot, shipped_model, cxr_dir, tmp_path, make_window):
    """No logits know of a brush stroke: the window keeps its own mask outside the click's disk."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from tests.app.gui.annotate.test_edit import brush_drag

    window, truth, label = _window_with_box(qtbot, make_window, shipped_model, cxr_dir, tmp_path / "cases")
    h, w = truth.shape
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_R)  # brush, in the top-left corner (outside the lungs)
    brush_drag(window, [(12, 12), (40, 14), (70, 16)])
    painted = window.annotator.session.masks[label].copy()
    assert painted[14, 40]
    QTest.keyClick(window, Qt.Key.Key_B)  # back to the box tool, then a click in the lower right
    x, y = int(w * 0.7), int(h * 0.75)
    click(window, x + 0.5, y + 0.5, button=Qt.MouseButton.RightButton)
    wait_settled(qtbot, window)
    after = window.annotator.session.masks[label]
    far = _far_from(after.shape, x, y)
    assert after[14, 40] and np.array_equal(after[far], painted[far])


def test_after_an_undo_a_click_still_edits_only_around_itself(qtbot, shipped_model, cxr_dir, tmp_path, make_window):
    """An undo drops the logits (they no longer match the mask), so the model decodes the whole
    mask again: the window still takes only the disk around the click."""
    from PySide6.QtCore import Qt

    window, _, label = _window_with_box(qtbot, make_window, shipped_model, cxr_dir, tmp_path / "cases", start=3)
    inside = np.argwhere(window.annotator.session.masks[label])
    y1, x1 = inside[len(inside) // 3]
    click(window, x1 + 0.5, y1 + 0.5, modifier=Qt.KeyboardModifier.ShiftModifier)
    wait_settled(qtbot, window)
    window.on_undo()
    assert label not in window.annotator.session.logits
    before = window.annotator.session.masks[label].copy()
    y2, x2 = inside[2 * len(inside) // 3]
    click(window, x2 + 0.5, y2 + 0.5, button=Qt.MouseButton.RightButton)
    wait_settled(qtbot, window)
    after = window.annotator.session.masks[label]
    far = _far_from(after.shape, x2, y2)
    assert np.array_equal(after[far], before[far])


def test_without_a_box_clicks_are_the_prompt_and_decode_the_whole_mask(qtbot, shipped_model, cxr_dir, tmp_path,
                                                                        make_window):
    """Points alone segment a lung each: a second lung's click must reach the whole lung, not a disk."""
    from PySide6.QtCore import Qt

    [path] = copy_cxrs(cxr_dir, tmp_path / "cases", 1)
    truth = ground_truth(cxr_dir, path.name)
    window = make_window([tmp_path / "cases"], model=shipped_model)
    h, w = truth.shape
    lungs = [np.argwhere(truth[:, : w // 2]), np.argwhere(truth[:, w // 2 :]) + [0, w // 2]]
    for part in lungs:
        y, x = part[len(part) // 2]
        click(window, x + 0.5, y + 0.5, modifier=Qt.KeyboardModifier.ShiftModifier)
        wait_settled(qtbot, window)
        assert window.annotator.last_request.click is False
    mask = window.annotator.session.masks[window.annotator.label]
    y, x = lungs[1][len(lungs[1]) // 2]
    assert (mask & _far_from(mask.shape, x, y) & (np.arange(w) >= w // 2)).sum() > 0.2 * truth[:, w // 2 :].sum()
    drag_box(qtbot, window, (0, 0, w, h))
    wait_settled(qtbot, window)
    click(window, x + 0.5, y + 0.5, button=Qt.MouseButton.RightButton)
    wait_settled(qtbot, window)
    assert window.annotator.last_request.click is True
