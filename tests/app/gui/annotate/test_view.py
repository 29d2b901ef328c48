"""Viewing: wheel zoom under the cursor, window/level on every image, cursor readout."""

from __future__ import annotations

import math

import numpy as np


def wheel(widget, pos, delta: int = 120) -> None:
    """One wheel notch at viewport position ``pos`` (a QPoint)."""
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    event = QWheelEvent(
        QPointF(pos), QPointF(widget.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, delta),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )
    QApplication.sendEvent(widget, event)


def pixel_under(canvas, pos) -> tuple[int, int]:
    scene = canvas.mapToScene(pos)
    return math.floor(scene.x()), math.floor(scene.y())


def test_wheel_zoom_keeps_the_pixel_under_the_cursor(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtTest import QTest

    window = make_window([image_folder])
    canvas = window.canvas
    viewport = canvas.viewport()
    # off-centre, on the centre of an image pixel, after the mouse has moved there
    target = (60.5, 70.5)
    pos = canvas.image_to_viewport(*target)
    QTest.mouseMove(viewport, pos)
    start_zoom = canvas.zoom
    for _ in range(6):
        before = pixel_under(canvas, pos)
        wheel(viewport, pos)
        assert pixel_under(canvas, pos) == before
    assert canvas.zoom > start_zoom * 2
    assert pixel_under(canvas, pos) == (60, 70)
    for _ in range(3):  # and back out
        before = pixel_under(canvas, pos)
        wheel(viewport, pos, -120)
        assert pixel_under(canvas, pos) == before


def test_window_level_works_on_png_for_display_only(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from engine.imaging import default_window
    from tests.app.conftest import drag_box

    window = make_window([image_folder])
    assert window.image.format == "PNG" and window.image.raw is None
    model_pixels = window.image.pixels.copy()
    shown = window.canvas.image_item.pixels
    assert np.array_equal(shown, model_pixels)  # identity window at first
    drag_box(qtbot, window, (100, 100, 180, 200), modifier=Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not np.array_equal(window.canvas.image_item.pixels, model_pixels), timeout=5000)
    assert window.window_level.width > 255.0
    assert np.array_equal(window.image.pixels, model_pixels)  # the model input is untouched
    assert "lungs" not in window.annotator.session.masks  # a window drag draws nothing
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_W)  # auto percentile window
    assert window.window_level == default_window(model_pixels.astype(np.float32))
    qtbot.waitUntil(lambda: "window" in window.statusBar().currentMessage(), timeout=5000)
    assert np.array_equal(window.image.pixels, model_pixels)


def test_rgb_images_rewindow_too():
    from app.gui.annotate import Windower
    from engine.imaging import LoadedImage

    rgb = np.random.default_rng(0).integers(60, 200, (20, 30, 3), dtype=np.uint8)
    image = LoadedImage(None, rgb, None, None, None, "JPEG", None)
    windower = Windower(image)
    assert np.array_equal(windower.apply(windower.file_window), rgb)
    stretched = windower.apply(windower.preset("auto"))
    assert stretched.shape == rgb.shape and stretched.max() == 255 and stretched.min() == 0


def test_images_panel_keeps_its_width_when_the_counts_grow(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtWidgets import QApplication

    window = make_window([image_folder])
    QApplication.processEvents()
    canvas_before = window.canvas.geometry()
    dock_before = window.image_list.width()
    window.image_list.set_counts({"done": 12345, "total": 99999, "corrected": 12000, "skipped": 345,
                                  "model": 55555, "new": 32099})
    QApplication.processEvents()
    assert window.image_list.width() == dock_before
    assert window.canvas.geometry() == canvas_before
    assert "55555" in window.image_list.details.toolTip()  # the full text is one hover away


def test_the_image_list_has_a_legend_for_its_status_colours(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtWidgets import QLabel

    from app.gui.annotate.image_list import STATUS_TEXT

    window = make_window([image_folder])
    legend = window.image_list.legend
    assert legend.isVisible()
    texts = {label.objectName(): label.text() for label in legend.findChildren(QLabel) if label.objectName()}
    assert texts == {f"legend-{status}": text for status, text in STATUS_TEXT.items()}


def test_status_bar_reads_out_the_pixel_under_the_cursor(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtTest import QTest

    window = make_window([image_folder])
    viewport = window.canvas.viewport()
    QTest.mouseMove(viewport, window.canvas.image_to_viewport(30.5, 30.5))  # a real move first
    QTest.mouseMove(viewport, window.canvas.image_to_viewport(60.5, 70.5))
    value = int(window.image.pixels[70, 60])
    assert window.status.position.text() == f"x 60  y 70  value {value}"
    QTest.mouseMove(viewport, window.canvas.image_to_viewport(-20, -20))
    assert window.status.position.text() == ""


def test_pixel_readout_shows_the_files_own_values():
    from app.gui.status import pixel_readout
    from engine.imaging import LoadedImage, Window

    raw = np.arange(12, dtype=np.float32).reshape(3, 4) * 100 - 1024
    image = LoadedImage(None, np.zeros((3, 4), np.uint8), raw, Window(0, 100), None, "DICOM", None)
    assert pixel_readout(image, (2, 1)) == "x 2  y 1  value -424"
    rgb = LoadedImage(None, np.full((3, 4, 3), 7, np.uint8), None, None, None, "JPEG", None)
    assert pixel_readout(rgb, (0, 0)) == "x 0  y 0  value 7, 7, 7"
    assert pixel_readout(rgb, (9, 0)) == "" and pixel_readout(None, (0, 0)) == ""
