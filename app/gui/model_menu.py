"""Model menu: shipped default, trained versions, an imported SAM checkpoint; CPU or CUDA.

It lists what :mod:`engine.models.registry` (and the project's recorded model versions) know and
emits the user's choice; loading happens in the model worker. The current model's entry is
checked.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from trainer.finetune import same_path

DEVICES = (("auto", "Auto (CUDA if available)"), ("cpu", "CPU"), ("cuda", "CUDA GPU"))


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


class ModelMenu(QObject):
    model_chosen = Signal(str)  # a model folder, name or .pth path
    device_chosen = Signal(str)
    history_requested = Signal()  # "Fine-tune / model history...": show the trainer pane

    def __init__(self, menu: QMenu, parent: QWidget) -> None:
        super().__init__(parent)
        self.menu = menu
        self.parent_widget = parent
        self.current_source: str | None = None
        self.device = "auto"
        self.project_models: list[dict] = []
        self.menu.aboutToShow.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        from engine.models import default_model_name, list_models

        self.menu.clear()
        group = QActionGroup(self.menu)
        default = default_model_name()
        entries = [(e.name + (" (shipped default)" if e.shipped and e.name == default else " (shipped)" if e.shipped else " (trained)"), str(e.path)) for e in list_models()]
        entries += [(f"{m['name']} (project)", m["path"]) for m in self.project_models if Path(m["path"]).exists()]
        if not entries:
            placeholder = self.menu.addAction("no model installed - import one below")
            placeholder.setEnabled(False)
        seen = set()
        for text, source in entries:
            if source in seen:
                continue
            seen.add(source)
            action = QAction(text, self.menu, checkable=True)
            action.setChecked(self._same(source))
            action.setToolTip(source)
            action.triggered.connect(lambda _c=False, s=source: self.model_chosen.emit(s))
            group.addAction(action)
            self.menu.addAction(action)
        if self.current_source and self.current_source not in seen:
            action = QAction(f"{Path(self.current_source).name} (opened)", self.menu, checkable=True)
            action.setChecked(True)
            self.menu.addAction(action)
        self.menu.addSeparator()
        self.menu.addAction("Open model folder...", self._open_folder)
        self.menu.addAction("Import SAM / MedSAM checkpoint (.pth)...", self._open_checkpoint)
        self.menu.addAction("Fine-tune / model history...", self.history_requested.emit)
        self.menu.addSeparator()
        device_menu = self.menu.addMenu("Device")
        devices = QActionGroup(device_menu)
        has_cuda = cuda_available()
        for key, text in DEVICES:
            action = QAction(text, device_menu, checkable=True)
            action.setChecked(key == self.device)
            action.setEnabled(key != "cuda" or has_cuda)
            action.triggered.connect(lambda _c=False, k=key: self.device_chosen.emit(k))
            devices.addAction(action)
            device_menu.addAction(action)

    def _same(self, source: str) -> bool:
        return bool(self.current_source) and same_path(source, self.current_source)

    def _open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.parent_widget, "Model folder (with model.json)")
        if folder:
            self.model_chosen.emit(folder)

    def _open_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.parent_widget, "SAM or MedSAM checkpoint", "", "PyTorch checkpoints (*.pth *.pt);;All files (*)"
        )
        if path:
            self.model_chosen.emit(path)
