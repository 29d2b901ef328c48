"""The tool bar: the canvas tools as one exclusive palette, then the zero-click actions
(propose on this image, segment the folder), icons shipped in the package.

Annotation tools (ITK-SNAP, CVAT, X-AnyLabeling) show a palette with the active tool pressed
and its key in the tooltip; the buttons are the same checkable QActions as the Tools menu,
so menu, key and button can never disagree. Icons are SVGs in ``app/gui/icons`` (package
data), found through importlib.resources so an installed wheel finds them too.
"""

from __future__ import annotations

from importlib import resources

from PySide6.QtCore import QSize
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMainWindow, QToolBar

from app.gui.actions import TOOL_IDS

ZERO_CLICK_IDS = ("propose", "segment_folder")
"""After the tools, behind a separator: the model proposes (this image, the whole folder)."""


def icon_path(name: str) -> str:
    """File path of the shipped icon ``name`` (e.g. 'box'); KeyError when it is not shipped."""
    path = resources.files("app.gui").joinpath("icons", f"{name}.svg")
    if not path.is_file():
        raise KeyError(name)
    return str(path)


def build_toolbar(window: QMainWindow, actions: dict[str, QAction]) -> QToolBar:
    """Add the tool palette to ``window`` (top area) and give the tool actions their icons."""
    bar = QToolBar("Tools", window)
    bar.setObjectName("toolbar-tools")
    bar.setIconSize(QSize(22, 22))
    for action_id in TOOL_IDS:
        action = actions[action_id]
        action.setIcon(QIcon(icon_path(action_id.removeprefix("tool_"))))
        bar.addAction(action)
    bar.addSeparator()
    for action_id in ZERO_CLICK_IDS:
        actions[action_id].setIcon(QIcon(icon_path(action_id)))
        bar.addAction(actions[action_id])
    window.addToolBar(bar)
    return bar
