"""Menus and QActions built from :data:`app.gui.shortcuts.ACTIONS`.

Each action calls ``window.on_<id>()``; the keys in the table are the keys bound, so the
Help > Shortcuts dialog cannot drift from the program.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from app.gui import shortcuts

TOOL_IDS = ("tool_box", "tool_positive", "tool_negative", "tool_brush", "tool_eraser", "tool_pan", "tool_window")
LABEL_IDS = ("label_1", "label_2", "label_3")


def build_menus(window: QMainWindow) -> tuple[dict[str, QAction], dict[str, QMenu]]:
    """Create every menu and action; returns them by id / menu name."""
    menus = {name: window.menuBar().addMenu(f"&{name}") for name in shortcuts.MENUS}
    actions: dict[str, QAction] = {}
    tools = QActionGroup(window)
    labels = QActionGroup(window)
    for spec in shortcuts.ACTIONS:
        action = QAction(spec.text, window)
        action.setObjectName(spec.id)
        if spec.keys:
            action.setShortcuts([QKeySequence(k) for k in spec.keys])
        if spec.tip:
            action.setStatusTip(spec.tip)
        if spec.keys:  # the shortcut is in every tooltip (menus and the tool bar)
            action.setToolTip(f"{spec.text.replace('&', '')} ({', '.join(spec.keys)})")
        action.setCheckable(spec.checkable)
        if spec.id in TOOL_IDS:
            tools.addAction(action)
        elif spec.id in LABEL_IDS:
            labels.addAction(action)
        handler = getattr(window, f"on_{spec.id}")
        if spec.checkable:
            action.triggered.connect(lambda checked, h=handler: h(checked))
        else:
            action.triggered.connect(lambda _checked=False, h=handler: h())
        menus[spec.menu].addAction(action)
        window.addAction(action)  # shortcuts work even when the menu bar is hidden
        actions[spec.id] = action
        if spec.id in ("export", "next_unfinished", "sort_doubtful", "segment_folder", "clear_label", "brush_bigger", "label_3", "toggle_masks"):
            menus[spec.menu].addSeparator()
    return actions, menus
