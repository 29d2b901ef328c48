"""One pixel, one lung: a lung's model mask never takes the other lung's pixels."""

from __future__ import annotations

import numpy as np

from app.gui.annotate.session import ImageSession
from tests.app.conftest import drag_box, engine_mask, wait_settled


def test_session_model_mask_leaves_the_other_lung_alone():
    session = ImageSession("x.png", (20, 20))
    right = np.zeros((20, 20), bool)
    right[:, :12] = True
    session.set_model_mask("right lung", right, None, None)
    left = np.zeros((20, 20), bool)
    left[:, 8:] = True
    session.set_model_mask("left lung", left, None, None)
    assert not (session.masks["left lung"] & session.masks["right lung"]).any()
    assert session.masks["left lung"][:, 12:].all()  # everything the right lung did not have


def test_overlapping_boxes_in_the_window_give_disjoint_lungs(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = make_window([image_folder])
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_1)
    drag_box(qtbot, window, (20, 30, 160, 220))
    wait_settled(qtbot, window)
    QTest.keyClick(window, Qt.Key.Key_2)
    drag_box(qtbot, window, (100, 30, 240, 220))
    wait_settled(qtbot, window)
    masks = window.annotator.session.masks
    left_alone = engine_mask(gui_model, window.image.pixels, boxes=np.array(window.annotator.session.prompt("left lung").box))
    assert (left_alone & masks["right lung"]).any(), "the boxes must overlap for this test to bite"
    assert not (masks["left lung"] & masks["right lung"]).any()
    assert np.array_equal(masks["left lung"], left_alone & ~masks["right lung"])


def paint_left_lung_over_the_right(qtbot, window):
    from tests.app.gui.annotate.test_edit import brush_drag

    session = window.annotator.session
    right = np.zeros(session.shape, bool)
    right[40:200, 20:120] = True
    before = session.snapshot(["right lung"])
    session.masks["right lung"] = right.copy()
    session.commit("test", before, manual=True)
    window.on_label_2()
    window.on_tool_brush()
    brush_drag(window, [(100.5, 100.5), (140.5, 100.5)])  # from inside the right lung out
    return right


def test_brush_strokes_leave_the_other_lung_alone(qtbot, gui_model, image_folder, make_window):
    window = make_window([image_folder])
    right = paint_left_lung_over_the_right(qtbot, window)
    masks = window.annotator.session.masks
    assert masks["left lung"][100, 130] and not masks["left lung"][100, 100]
    assert np.array_equal(masks["right lung"], right)  # the right lung kept every pixel
    assert not (masks["left lung"] & masks["right lung"]).any()


def test_overwrite_preference_lets_a_stroke_take_the_other_lungs_pixels(
    qtbot, gui_model, image_folder, make_window, private_preferences
):
    window = make_window([image_folder])
    window.panel.overwrite.setChecked(True)
    assert "brush_overwrites_other_lung=true" in private_preferences.read_text()
    right = paint_left_lung_over_the_right(qtbot, window)
    masks = window.annotator.session.masks
    assert masks["left lung"][100, 100] and masks["left lung"][100, 130]
    assert not masks["right lung"][100, 100] and masks["right lung"][150, 50]
    assert not (masks["left lung"] & masks["right lung"]).any()
    window.on_undo()  # one step gives the right lung its pixels back
    assert np.array_equal(masks["right lung"], right) and "left lung" not in masks
