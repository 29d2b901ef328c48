"""The trainer pane's data section: the corrected images, the split the run will use, the base.

Widgets only: the pane computes the split (:func:`trainer.finetune.preview_split`) and the
base model; this shows them, says before a run when too few images are held back for the
comparison to tell (:func:`trainer.finetune.held_back_note`), and forwards "Base model..." as
``base_chosen(folder)``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from trainer.finetune import SplitPreview, held_back_note, split_problem

NOTE_STYLE = "background: #7a5b00; color: white; padding: 4px;"


class DataView(QWidget):
    base_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel("open a project folder")
        self.label.setWordWrap(True)
        self.split_view = QTreeWidget()
        self.split_view.setHeaderLabels(["Image", "Used for"])
        self.split_view.setRootIsDecorated(False)
        self.split_view.setMaximumHeight(120)
        self.split_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.split_view.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # long names: "Used for" stays in view
        header = self.split_view.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.held_back_note = QLabel("")
        self.held_back_note.setObjectName("held-back-note")
        self.held_back_note.setWordWrap(True)
        self.held_back_note.setStyleSheet(NOTE_STYLE)
        self.held_back_note.setVisible(False)
        self.base_label = QLabel("-")
        self.base_label.setWordWrap(True)
        choose = QPushButton("Base model...")
        choose.setToolTip("Fine-tune from another FP32 model folder (no adapters, not INT8)")
        choose.clicked.connect(self._choose_base)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.split_view)
        layout.addWidget(self.held_back_note)
        row = QHBoxLayout()
        row.addWidget(self.base_label, 1)
        row.addWidget(choose)
        layout.addLayout(row)

    def show_split(self, split: SplitPreview | None, message: str = "", val_fraction: float = 0.2) -> None:
        self.split_view.clear()
        note = (split_problem(split) or held_back_note(len(split.val), val_fraction)) if split is not None else None
        self.held_back_note.setText(note or "")
        self.held_back_note.setVisible(note is not None)
        if split is None:
            self.label.setText(message)
            return
        self.label.setText(
            f"{split.total} corrected image(s), {split.groups} patient group(s): {len(split.train)} train / "
            f"{len(split.val)} held back for validation (never one patient on both sides)")
        for names, use in ((split.train, "train"), (split.val, "held back")):
            for name in names:
                item = QTreeWidgetItem([name, use])
                item.setToolTip(0, name)
                self.split_view.addTopLevelItem(item)

    def show_base(self, text: str, tooltip: str = "") -> None:
        self.base_label.setText(text)
        self.base_label.setToolTip(tooltip)

    def _choose_base(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "FP32 base model folder (with model.json)")
        if folder:
            self.base_chosen.emit(folder)
