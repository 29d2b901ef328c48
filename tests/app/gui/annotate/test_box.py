"""Box and click prompts on the real MainWindow: the mask is the engine's own output."""

from __future__ import annotations

import time

import numpy as np

from tests.app.conftest import click, drag_box, engine_mask, wait_ready, wait_settled


def test_folder_opens_recursively_with_statuses_and_counts(gui_model, image_folder, make_window):
    window = make_window([image_folder])
    assert len(window.project.records) == 5
    assert sum("/" in r.rel_path for r in window.project.records) == 2  # the sub-folder's images
    assert window.image_list.summary.text().startswith("Done 0 / 5")
    assert window.model_info.name == "tiny-default"
    assert window.image.pixels.shape == (256, 256)


def test_dragged_box_gives_the_engines_mask_for_the_box_sent(qtbot, gui_model, image_folder, make_window):
    window = make_window([image_folder])
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    session = window.annotator.session
    sent = window.annotator.last_request
    assert sent.final and sent.label == "lungs"
    assert np.allclose(sent.box, (30, 40, 220, 230), atol=1.0)  # rounding of mouse positions only
    assert session.prompt("lungs").box == sent.box
    expected = engine_mask(gui_model, window.image.pixels, boxes=np.array(sent.box))
    got = session.masks["lungs"]
    assert 0 < got.sum() < got.size
    assert np.array_equal(got, expected)
    assert window.status.latency.text().startswith("box->mask:")


def test_one_box_per_label_and_labels_by_keyboard(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = make_window([image_folder])
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_1)
    assert window.annotator.label == "right lung" and window.panel.label == "right lung"
    drag_box(qtbot, window, (20, 30, 120, 220))
    wait_settled(qtbot, window)
    QTest.keyClick(window, Qt.Key.Key_2)
    assert window.annotator.label == "left lung"
    drag_box(qtbot, window, (140, 30, 240, 220))
    wait_settled(qtbot, window)
    session = window.annotator.session
    assert set(session.masks) == {"right lung", "left lung"}
    assert set(window.canvas.box_items) == {"right lung", "left lung"}
    right_box = session.prompt("right lung").box
    expected = engine_mask(gui_model, window.image.pixels, boxes=np.array(right_box))
    assert np.array_equal(session.masks["right lung"], expected)


def test_clicks_refine_with_the_previous_low_res_logits(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtCore import Qt

    from engine.models import load_model
    from engine.predict import Predictor, keep_outside_focus

    window = make_window([image_folder])
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    box = window.annotator.session.prompt("lungs").box
    click(window, 100, 120, modifier=Qt.KeyboardModifier.ShiftModifier)
    wait_settled(qtbot, window)
    click(window, 128, 60, modifier=Qt.KeyboardModifier.AltModifier)
    wait_settled(qtbot, window)
    prompt = window.annotator.session.prompt("lungs")
    assert prompt.point_labels == [1, 0]
    predictor = Predictor(load_model(gui_model), device="cpu")
    predictor.set_image(window.image.pixels)
    first = predictor.predict(boxes=np.array(box))
    # each click a focused correction of the mask before it (engine.predict.focus)
    second = predictor.predict(boxes=np.array(box), points=np.array(prompt.points[:1]), point_labels=[1],
                               mask_input=first.low_res_logits, focus=True)
    third = predictor.predict(boxes=np.array(box), points=np.array(prompt.points), point_labels=[1, 0],
                              mask_input=second.low_res_logits, focus=True)
    # and the window keeps its mask outside each click's disk (brush strokes included)
    shown = keep_outside_focus(first.masks[0, 0], second.masks[0, 0], prompt.points[0])
    shown = keep_outside_focus(shown, third.masks[0, 0], prompt.points[1])
    assert np.array_equal(window.annotator.session.masks["lungs"], shown)


def test_stale_boxes_are_dropped_while_the_worker_is_slow(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    window = make_window([image_folder])
    predictor = window.worker.predictor
    original = predictor.predict

    def slow_predict(*args, **kwargs):
        time.sleep(0.15)
        return original(*args, **kwargs)

    predictor.predict = slow_predict
    viewport = window.canvas.viewport()
    p0 = window.canvas.image_to_viewport(20, 20)
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p0)
    moves = 30
    for k in range(1, moves + 1):
        end = window.canvas.image_to_viewport(40 + 6 * k, 40 + 6 * k)
        QTest.mouseMove(viewport, QPoint(end.x(), end.y()))
        qtbot.wait(20)  # a real drag: the event loop runs between moves
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    wait_settled(qtbot, window)
    assert window.worker.processed < moves  # stale requests never reached the model
    assert window.worker.dropped >= 1
    assert window.annotator.results == window.worker.processed
    final_box = window.annotator.session.prompt("lungs").box
    assert window.annotator.last_request.box == final_box and window.annotator.last_request.final
    predictor.predict = original
    expected = engine_mask(gui_model, window.image.pixels, boxes=np.array(final_box))
    assert np.array_equal(window.annotator.session.masks["lungs"], expected)


def test_next_image_is_prefetched_and_navigation_by_keyboard(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = make_window([image_folder])
    second = str(window.project.path(1))
    qtbot.waitUntil(lambda: second in window.loader.cached_paths(), timeout=10000)
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_N)
    wait_ready(qtbot, window)
    assert window.index == 1
    QTest.keyClick(window, Qt.Key.Key_PageUp)
    wait_ready(qtbot, window)
    assert window.index == 0
    assert window.cache.hits >= 1  # the prefetched embedding was reused


def test_mailbox_keeps_only_the_newest_request_per_label():
    from app.gui.annotate import LatestMailbox

    box = LatestMailbox()
    assert box.put("a1", key="left lung") is False
    assert box.put("b1", key="right lung") is False
    assert box.put("a2", key="left lung") is True  # a1 dropped, never queued
    assert len(box) == 2
    assert box.take() == (True, "b1")  # oldest waiting label first
    assert box.take() == (True, "a2")
    assert box.take() == (False, None)
