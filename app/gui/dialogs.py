"""Help > Shortcuts (built from the one shortcut table) and Help > About (with memory caps)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from app.gui import shortcuts

MEMORY_CAPS = (
    "Memory caps: decoded images - current, next and previous (at most 3, and 1 GiB); "
    "image list - names and statuses only (no pixels); embeddings - in-memory LRU of 512 MiB; "
    "undo history - 200 steps and 64 MiB per image (changed rectangles, bit-packed)."
)

ABOUT = (
    "<b>LungSAM</b> - interactive lung segmentation on chest X-rays.<br><br>"
    "Draw a box and the mask follows the mouse; refine with clicks, brush and eraser; "
    "everything is saved to <tt>.lungsam/</tt> next to the images (autosave every 5 s and on "
    "image change).<br><br>"
    "Labels are anatomical: the patient's left lung appears on the image's right.<br><br>"
    + MEMORY_CAPS
)


class ShortcutsDialog(QDialog):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = shortcuts.rows()
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["Menu", "Action", "Keys / gesture"])
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(640, 640)
