"""The project's model versions, newest first, with "Use selected version" for rollback.

Widgets only: rows come from :meth:`engine.project.store.ProjectStore.list_model_versions`;
choosing a row emits ``version_chosen(name)`` and the trainer pane activates and loads it.
The list fits the pane's column without a horizontal scroll bar: the new model's held-back
Dice is shown, the current model's beside it in the tooltip, and a too long name is elided in
the middle (whole in its tooltip).
"""

from __future__ import annotations

import json
import time
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

COLUMNS = ("Version", "Created", "Dice", "")


class ModelHistory(QWidget):
    version_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setMaximumHeight(130)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.headerItem().setToolTip(2, "Held-back Dice of the version (the model it replaced: in the tooltip)")
        self.tree.itemDoubleClicked.connect(lambda item, _c: self._choose(item))
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.use_button = QPushButton("Use selected version")
        self.use_button.setToolTip("Make the selected version the project's model (rollback) and load it")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(lambda: self._choose(self.tree.currentItem()))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.use_button)
        layout.addLayout(row)
        self.versions: list[dict[str, Any]] = []

    def set_versions(self, versions: list[dict[str, Any]], current_path: str | None = None) -> None:
        from trainer.finetune import find_version

        self.versions = versions
        current = find_version(versions, current_path)
        self.tree.clear()
        for version in reversed(versions):
            metrics = version.get("metrics") or {}
            after, before = metrics.get("dice_after"), metrics.get("dice_before")
            dice = f"{after:.4f}" if after is not None else "-"
            was = f"held-back Dice {after:.4f}; the model it replaced: {before:.4f}\n" if dice != "-" and before is not None else ""
            in_use = current is not None and current["name"] == version["name"]
            state = "in use" if in_use else "active" if version.get("active") else ""
            role = (version.get("provenance") or {}).get("role")
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(version["created"]))
            item = QTreeWidgetItem([version["name"], created, dice if role != "base" else "base", state])
            item.setData(0, Qt.ItemDataRole.UserRole, version["name"])
            item.setToolTip(0, f"{version['name']}\n" + json.dumps(version.get("provenance"), indent=1, default=str)[:3000])
            item.setToolTip(2, was + json.dumps(metrics, indent=1, default=str)[:2000])
            item.setToolTip(3, "the project's model (active) and loaded now (in use)" if in_use and version.get("active")
                            else "loaded now, not the project's saved choice" if in_use else "")
            self.tree.addTopLevelItem(item)
        self._selection_changed()

    def _selection_changed(self) -> None:
        self.use_button.setEnabled(self.tree.currentItem() is not None and self.isEnabled())

    def _choose(self, item: QTreeWidgetItem | None) -> None:
        if item is not None:
            self.version_chosen.emit(str(item.data(0, Qt.ItemDataRole.UserRole)))
