"""Editable boxes: a corner or an edge of a lung's box is grabbed within a few SCREEN pixels
at any zoom, dragging it resizes that box and the lung's mask follows (one undo step)."""

from __future__ import annotations

import numpy as np
import pytest

from app.gui.annotate.box_handles import MIN_SIDE, drag_handle, hit_handle
from tests.app.conftest import drag_box, engine_mask, wait_settled

BOX = (100.0, 50.0, 200.0, 150.0)  # screen pixels


@pytest.mark.parametrize(
    ("x", "y", "handle"),
    [(101, 52, "tl"), (198, 148, "br"), (203, 47, "tr"), (96, 151, "bl"),
     (100, 100, "l"), (204, 90, "r"), (150, 46, "t"), (150, 155, "b")],
)
def test_corners_and_edges_are_hit_within_the_screen_tolerance(x, y, handle):
    assert hit_handle(BOX, x, y)[0] == handle


@pytest.mark.parametrize(("x", "y"), [(150, 100), (90, 100), (150, 40), (300, 300), (100, 170)])
def test_inside_and_far_outside_is_no_handle(x, y):
    assert hit_handle(BOX, x, y) is None


def test_dragging_a_handle_moves_only_its_sides_and_stays_on_the_image():
    box = (10.0, 20.0, 60.0, 80.0)
    assert drag_handle(box, "br", 70, 90, (100, 100)) == (10, 20, 70, 90)
    assert drag_handle(box, "l", 0, 999, (100, 100)) == (0, 20, 60, 80)  # only x moves
    assert drag_handle(box, "t", 33, -5, (100, 100)) == (10, 0, 60, 80)  # clipped to the image
    assert drag_handle(box, "tl", 500, 500, (100, 100)) == (60 - MIN_SIDE, 80 - MIN_SIDE, 60, 80)


def test_dragging_a_corner_at_zoom_resizes_the_box_and_the_mask_follows(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    window = make_window([image_folder])
    window.on_label_1()
    drag_box(qtbot, window, (20, 30, 120, 200))
    wait_settled(qtbot, window)
    session = window.annotator.session
    before_mask = session.masks["right lung"].copy()
    canvas = window.canvas
    corner = canvas.image_to_viewport(120, 200)
    canvas.zoom_by(1.7, anchor=QPoint(corner))  # zoom around the corner: it stays in view
    assert abs(canvas.zoom - 1.0) > 0.5
    corner = canvas.image_to_viewport(120, 200)
    viewport = canvas.viewport()
    window.on_label_3()  # a box is edited with another label current too
    QTest.mouseMove(viewport, corner + QPoint(3, -2))  # hovering near the corner: resize cursor
    assert viewport.cursor().shape() == Qt.CursorShape.SizeFDiagCursor
    target = canvas.image_to_viewport(150, 230)
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, corner + QPoint(3, -2))
    for k in range(1, 6):
        QTest.mouseMove(viewport, corner + (target - corner) * k / 5)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, target)
    wait_settled(qtbot, window)
    box = session.prompt("right lung").box
    step = 1.0 / canvas.zoom + 1e-6  # one screen pixel in image pixels
    assert np.allclose(box, (20, 30, 150, 230), atol=step), box
    assert "left lung" not in session.masks  # the edit went to the box's own lung
    assert not np.array_equal(session.masks["right lung"], before_mask)
    assert np.array_equal(session.masks["right lung"], engine_mask(gui_model, window.image.pixels, boxes=np.array(box)))
    window.on_undo()  # the whole drag is one step
    assert np.allclose(session.prompt("right lung").box, (20, 30, 120, 200), atol=step)
    assert np.array_equal(session.masks["right lung"], before_mask)
