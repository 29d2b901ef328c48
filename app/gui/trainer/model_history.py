"""The project's model versions, newest first, with "Use selected version" for rollback.

Widgets only: rows come from :meth:`engine.project.store.ProjectStore.list_model_versions`;
choosing a row emits ``version_chosen(name)`` and the trainer pane activates and loads it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

COLUMNS = ("Version", "Created", "Held-back Dice", "")


class ModelHistory(QWidget):
    version_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setMaximumHeight(130)
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
            dice = f"{after:.4f} (was {before:.4f})" if after is not None and before is not None else "-"
            flags = []
            if version.get("active"):
                flags.append("active")
            if current is not None and current["name"] == version["name"]:
                flags.append("in use")
            role = (version.get("provenance") or {}).get("role")
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(version["created"]))
            item = QTreeWidgetItem([version["name"], created, dice if role != "base" else "base model", ", ".join(flags)])
            item.setData(0, Qt.ItemDataRole.UserRole, version["name"])
            item.setToolTip(0, json.dumps(version.get("provenance"), indent=1, default=str)[:3000])
            item.setToolTip(2, json.dumps(metrics, indent=1, default=str)[:2000])
            self.tree.addTopLevelItem(item)
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)
        self._selection_changed()

    def _selection_changed(self) -> None:
        self.use_button.setEnabled(self.tree.currentItem() is not None and self.isEnabled())

    def _choose(self, item: QTreeWidgetItem | None) -> None:
        if item is not None:
            self.version_chosen.emit(str(item.data(0, Qt.ItemDataRole.UserRole)))
