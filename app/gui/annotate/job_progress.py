"""The folder job's place in the status bar: a bar, "12 / 40, 35 images/s, 1 s left", Cancel.

Why a widget of its own: a long background job must show how far it is and be stoppable
without a dialog in the way (the user keeps annotating meanwhile), as a download bar does.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget


def progress_text(done: int, total: int, images_per_second: float, seconds_left: float | None, unreadable: int = 0) -> str:
    """'segmenting 12 / 40, 35.1 images/s, 1 s left (1 unreadable)'."""
    text = f"segmenting {done} / {total}"
    if done:
        text += f", {images_per_second:.1f} images/s"
    if seconds_left is not None and done < total:
        text += f", {seconds_left:.0f} s left" if seconds_left < 120 else f", {seconds_left / 60:.0f} min left"
    if unreadable:
        text += f" ({unreadable} unreadable)"
    return text


class JobProgress(QWidget):
    """Hidden until a job starts; ``cancel_clicked`` when the user stops it."""

    cancel_clicked = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.text = QLabel("")
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(140)
        self.bar.setMaximumHeight(14)
        self.bar.setTextVisible(False)
        self.cancel = QToolButton()
        self.cancel.setText("Cancel")
        self.cancel.setToolTip("Stop segmenting the folder (images done so far stay saved)")
        self.cancel.clicked.connect(self.cancel_clicked)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        for widget in (self.text, self.bar, self.cancel):
            row.addWidget(widget)
        self.setVisible(False)

    def begin(self, total: int) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(0)
        self.text.setText(progress_text(0, total, 0.0, None))
        self.cancel.setEnabled(True)
        self.setVisible(True)

    def update_progress(self, done: int, total: int, images_per_second: float, seconds_left: float | None, unreadable: int = 0) -> None:
        self.bar.setValue(done)
        self.text.setText(progress_text(done, total, images_per_second, seconds_left, unreadable))

    def end(self) -> None:
        self.setVisible(False)
