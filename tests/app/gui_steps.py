"""Multi-step user actions that several GUI tests perform the same way.

tests/app/conftest.py holds the fixtures and single gestures (drag_box, click, waits); the
sequences built from them live here so each test file does not spell them out again.
"""

from __future__ import annotations

from typing import Any

from tests.app.conftest import drag_box, wait_settled

RIGHT_LUNG_BOX = (20, 30, 120, 220)  # image pixels; image left = patient right
LEFT_LUNG_BOX = (140, 30, 240, 220)


def box_both_lungs(qtbot: Any, window: Any) -> None:
    """Label 1 (right lung) and label 2 (left lung) each get a dragged box and its final mask."""
    window.on_label_1()
    drag_box(qtbot, window, RIGHT_LUNG_BOX)
    wait_settled(qtbot, window)
    window.on_label_2()
    drag_box(qtbot, window, LEFT_LUNG_BOX)
    wait_settled(qtbot, window)
