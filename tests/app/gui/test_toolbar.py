"""The tool bar: every canvas tool as a pressed/unpressed button with its key in the tooltip,
icons shipped as package data; right-click is a negative point."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from app.gui.actions import TOOL_IDS

ROOT = Path(__file__).resolve().parents[3]


def test_icons_ship_as_package_data(qapp):
    from PySide6.QtGui import QIcon

    from app.gui.toolbar import icon_path

    icons = resources.files("app.gui").joinpath("icons")
    for action_id in TOOL_IDS:
        name = action_id.removeprefix("tool_")
        assert icons.joinpath(f"{name}.svg").is_file(), name
        assert not QIcon(icon_path(name)).pixmap(22, 22).isNull(), name
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '[tool.setuptools.package-data]\n"app.gui" = ["icons/*.svg"]' in pyproject


def test_toolbar_highlights_the_active_tool_and_names_its_key(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QToolButton

    window = make_window([image_folder])
    bar = window.toolbar
    assert bar.isVisible()
    buttons = {bar.widgetForAction(window.actions[i]).defaultAction().objectName(): bar.widgetForAction(window.actions[i]) for i in TOOL_IDS}
    assert set(buttons) == set(TOOL_IDS)
    assert all(isinstance(b, QToolButton) and not b.icon().isNull() for b in buttons.values())
    assert "(B)" in buttons["tool_box"].toolTip() and "(R)" in buttons["tool_brush"].toolTip()
    assert "(L)" in buttons["tool_window"].toolTip() and "(Z)" in buttons["tool_pan"].toolTip()
    assert buttons["tool_box"].isChecked()
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_R)
    assert buttons["tool_brush"].isChecked() and not buttons["tool_box"].isChecked()
    QTest.mouseClick(buttons["tool_window"], Qt.MouseButton.LeftButton)
    assert window.canvas.tool == "window" and buttons["tool_window"].isChecked()
    assert not buttons["tool_brush"].isChecked()
    QTest.mouseClick(buttons["tool_pan"], Qt.MouseButton.LeftButton)
    assert window.canvas.tool == "pan"


def test_pan_and_window_tools_drag_without_modifiers(qtbot, gui_model, image_folder, make_window):
    from tests.app.conftest import drag_box

    window = make_window([image_folder])
    window.on_zoom_in(), window.on_zoom_in()
    window.on_tool_pan()
    before = window.canvas.mapToScene(window.canvas.viewport().rect().center())
    drag_box(qtbot, window, (100, 100, 140, 150))
    after = window.canvas.mapToScene(window.canvas.viewport().rect().center())
    assert before.x() - after.x() > 20 and before.y() - after.y() > 20  # the image followed the hand
    assert "lungs" not in window.annotator.session.masks
    window.on_tool_window()
    start = window.window_level
    drag_box(qtbot, window, (100, 100, 160, 170))
    assert window.window_level.width > start.width
    assert "lungs" not in window.annotator.session.masks


def test_right_click_is_a_negative_point(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtCore import Qt

    from tests.app.conftest import click, drag_box, wait_settled

    window = make_window([image_folder])
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    click(window, 120.5, 130.5, button=Qt.MouseButton.RightButton)
    wait_settled(qtbot, window)
    prompt = window.annotator.session.prompt("lungs")
    assert len(prompt.points) == 1 and prompt.point_labels == [0]
    assert abs(prompt.points[0][0] - 120.5) < 1 and abs(prompt.points[0][1] - 130.5) < 1
    click(window, 60.5, 70.5, modifier=Qt.KeyboardModifier.AltModifier)  # Alt still works
    wait_settled(qtbot, window)
    assert prompt.point_labels == [0, 0]
