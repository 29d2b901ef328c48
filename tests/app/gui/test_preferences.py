"""What the window remembers (size, dock layout, brush radius) and the one-key review loop."""

from __future__ import annotations

from tests.app.conftest import drag_box, wait_ready, wait_settled


def test_save_and_next_is_one_key(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = make_window([image_folder])
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # A proposes now (zero-click)
    assert window.project.records[0].status == "corrected"
    assert window.index == 1
    wait_ready(qtbot, window)
    QTest.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # nothing drawn: just moves
    assert window.index == 2 and window.project.records[1].status == "new"


def test_window_size_docks_and_brush_radius_are_remembered(qtbot, gui_model, image_folder, make_window, private_preferences):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QDockWidget

    first = make_window([image_folder])
    first.resize(760, 560)  # within the offscreen screen (800 x 600), which clamps geometry
    QApplication.processEvents()
    images = first.findChild(QDockWidget, "dock-Images")
    default = images.width()
    # the canvas leaves no room to grow a dock at 760 px; shrinking it is a change to remember too
    first.resizeDocks([images], [default - 40], Qt.Orientation.Horizontal)
    first.panel.brush.setValue(17)
    QApplication.processEvents()
    width = images.width()
    assert width < default
    first.close()
    assert "window" in private_preferences.read_text()

    second = make_window([image_folder])
    QApplication.processEvents()
    assert (second.width(), second.height()) == (760, 560)
    assert second.findChild(QDockWidget, "dock-Images").width() == width
    assert second.panel.brush.value() == 17 and second.canvas.brush_radius == 17
    assert second.trainer_dock.isHidden()  # training is opened on purpose, not remembered
