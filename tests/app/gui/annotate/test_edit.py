"""Hand corrections on the real window: brush, eraser, fill, islands, undo/redo."""

from __future__ import annotations

import numpy as np

from app.gui.annotate import EditHistory, mask_ops
from tests.app.conftest import drag_box, wait_settled


def brush_drag(window, points, modifier=None) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    viewport = window.canvas.viewport()
    mods = modifier or Qt.KeyboardModifier.NoModifier
    vp = [window.canvas.image_to_viewport(x, y) for x, y in points]
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, mods, vp[0])
    for p in vp[1:]:
        QTest.mouseMove(viewport, p)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, mods, vp[-1])


def test_brush_stroke_then_undo_and_redo_restore_exactly(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = make_window([image_folder])
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    session = window.annotator.session
    model_mask = session.masks["lungs"].copy()
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_R)  # brush
    assert window.canvas.tool == "brush"
    QTest.keyClick(window, Qt.Key.Key_BracketRight)
    assert window.canvas.brush_radius > 10
    brush_drag(window, [(10, 10), (60, 12), (120, 20)])
    painted = session.masks["lungs"].copy()
    assert painted.sum() > model_mask.sum() and painted[12, 60]
    QTest.keyClick(window, Qt.Key.Key_E)  # eraser
    brush_drag(window, [(128, 128), (140, 140)])
    erased = session.masks["lungs"].copy()
    assert not erased[134, 134]
    assert session.edited and session.dirty

    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(session.masks["lungs"], painted)
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(session.masks["lungs"], model_mask)
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(session.masks["lungs"], painted)
    window.actions["redo"].trigger()
    assert np.array_equal(session.masks["lungs"], erased)
    # the overlay shows what the session holds
    assert window.canvas.overlays["lungs"].fill.mask is session.masks["lungs"]
    shot = window.canvas.viewport().grab().toImage()
    erased_px = shot.pixelColor(window.canvas.image_to_viewport(134.5, 134.5))
    painted_px = shot.pixelColor(window.canvas.image_to_viewport(60.5, 12.5))
    assert erased_px.red() == erased_px.green() == erased_px.blue()  # plain grey radiograph
    assert painted_px.green() > painted_px.red() + 40  # green 'lungs' overlay
    # undo back past the box: the label disappears, its box too
    window.on_undo(), window.on_undo(), window.on_undo()
    assert "lungs" not in session.masks
    assert session.prompt("lungs").box is None and "lungs" not in window.canvas.box_items


def test_fill_holes_and_remove_islands_are_undoable(qtbot, gui_model, image_folder, make_window):
    window = make_window([image_folder])
    session = window.annotator.session
    ring = np.zeros(session.shape, bool)
    ring[50:150, 50:150] = True
    ring[80:120, 80:120] = False  # a hole
    ring[200:203, 200:203] = True  # a crumb
    before = session.snapshot(["lungs"])
    session.masks["lungs"] = ring.copy()
    session.commit("test", before, manual=True)
    window.on_fill_holes()
    assert session.masks["lungs"][100, 100] and session.masks["lungs"][201, 201]
    window.on_remove_islands()
    assert not session.masks["lungs"][201, 201] and session.masks["lungs"][100, 100]
    window.on_undo()
    window.on_undo()
    assert np.array_equal(session.masks["lungs"], ring)


def test_history_keeps_at_least_50_steps_in_little_memory():
    history = EditHistory()
    masks = {"lungs": np.zeros((2000, 2500), bool)}
    states = [masks["lungs"].copy()]
    for i in range(60):
        before = {"lungs": masks["lungs"].copy()}
        mask_ops.paint_stroke(masks["lungs"], (20 + 30 * i, 100), (20 + 30 * i, 1500), 8, True)
        history.record("brush", before, masks)
        states.append(masks["lungs"].copy())
    assert history.nbytes < 2_000_000  # 60 strokes on a 5 MP mask: rectangles, bit-packed
    for i in range(60):
        assert history.undo(masks) is not None
        assert np.array_equal(masks["lungs"], states[-2 - i])
    assert history.undo(masks) is None
    for _ in range(60):
        history.redo(masks)
    assert np.array_equal(masks["lungs"], states[-1])


def test_remove_small_islands_keeps_both_lungs_and_drops_crumbs():
    mask = np.zeros((100, 100), bool)
    mask[10:90, 5:40] = True
    mask[10:85, 60:95] = True
    mask[50:52, 50:52] = True
    kept = mask_ops.remove_small_islands(mask)
    assert kept[50, 20] and kept[50, 80] and not kept[50, 50]


def test_brush_strokes_are_round_and_clipped_to_the_image():
    mask = np.zeros((20, 30), bool)
    rect = mask_ops.paint_stroke(mask, (0, 0), (0, 0), 3, True)
    assert rect == (0, 0, 4, 4)
    assert mask[0, 3] and not mask[3, 3]  # a disk, not a square
    assert mask_ops.paint_stroke(mask, (100, 100), (120, 100), 2, True) is None


def test_fill_and_islands_say_what_they_did(qtbot, gui_model, image_folder, make_window):
    window = make_window([image_folder])
    session = window.annotator.session
    ring = np.zeros(session.shape, bool)
    ring[50:150, 50:150] = True
    ring[80:90, 80:90] = False  # two holes, 100 + 50 px
    ring[100:105, 100:110] = False
    ring[200:203, 200:203] = True  # a 9 px crumb
    before = session.snapshot(["lungs"])
    session.masks["lungs"] = ring.copy()
    session.commit("test", before, manual=True)
    status = window.statusBar()
    window.on_fill_holes()
    assert status.currentMessage() == "filled 2 holes (150 px)"
    window.on_fill_holes()
    assert status.currentMessage() == "nothing to fill: no holes"
    window.on_remove_islands()
    assert status.currentMessage() == "removed 1 island (9 px)"
    window.on_remove_islands()
    assert status.currentMessage() == "nothing to remove: no small islands"


def test_redo_of_a_point_says_point(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtCore import Qt

    from tests.app.conftest import click

    window = make_window([image_folder])
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    click(window, 120.5, 130.5, modifier=Qt.KeyboardModifier.ShiftModifier)
    wait_settled(qtbot, window)
    window.on_undo()
    assert window.statusBar().currentMessage() == "undo: point"
    window.on_redo()
    assert window.statusBar().currentMessage() == "redo: point"
    window.on_undo(), window.on_undo()
    assert window.statusBar().currentMessage() == "undo: box"


def test_a_strokes_rectangle_holds_every_pixel_it_painted():
    for end in ((140, 100), (140, 137), (100, 160)):
        mask = np.zeros((300, 300), bool)
        x0, y0, x1, y1 = mask_ops.paint_stroke(mask, (100, 100), end, 10, True)
        outside = mask.copy()
        outside[y0:y1, x0:x1] = False
        assert not outside.any(), end
