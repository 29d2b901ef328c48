"""Window size and dock/splitter layout remembered between sessions (QSettings INI).

A radiologist arranges the window once for their screen; opening it at 1400 x 900 with the
default docks every morning undoes that. The trainer dock opens hidden whatever was saved:
training is an occasional errand, not part of the correction loop.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import QDockWidget, QMainWindow

from app.gui.preferences import WINDOW_GEOMETRY, WINDOW_STATE, get_bytes, set_bytes

HIDDEN_AT_START = ("dock-Trainer",)


def restore_layout(window: QMainWindow) -> bool:
    """Apply the saved geometry and dock state (after every dock and tool bar exists)."""
    geometry, state = get_bytes(WINDOW_GEOMETRY), get_bytes(WINDOW_STATE)
    if geometry:
        window.restoreGeometry(QByteArray(geometry))
    if state:
        window.restoreState(QByteArray(state))
    for name in HIDDEN_AT_START:
        dock = window.findChild(QDockWidget, name)
        if dock is not None:
            dock.hide()
    return bool(geometry or state)


def remember_layout(window: QMainWindow) -> None:
    set_bytes(WINDOW_GEOMETRY, window.saveGeometry().data())
    set_bytes(WINDOW_STATE, window.saveState().data())
