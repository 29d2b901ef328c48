"""File > Export (Ctrl+E): choose the formats and the folder, export in the background, and
say what was written and why a chosen format wrote nothing ("no DICOM-SEG: source is not
DICOM" rather than "0 dicom_seg"). The chosen formats and folder are remembered."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.annotate.project import DEFAULT_FORMATS, EXPORT_FORMATS
from app.gui.preferences import get_preference, set_preference

EXPORT_FORMATS_KEY = "export/formats"
EXPORT_FOLDER_KEY = "export/folder"
SHORT_NAMES = {"png": "PNG", "coco": "COCO", "dicom_seg": "DICOM-SEG", "nifti": "NIfTI",
               "labelme": "LabelMe", "yolo": "YOLO-seg"}
NAMING = ("Files are named after the image: always NAME_lungs (both lungs), plus "
          "NAME_right_lung and NAME_left_lung when the lungs were drawn separately. "
          "Every export also writes the lung areas, one row per image, to "
          "measurements.csv and measurements.json (cm² where the image states its pixel "
          "spacing, else px²).")


class ExportDialog(QDialog):
    """Formats as check boxes, a folder, Export / Cancel."""

    def __init__(self, parent: QWidget | None = None, folder: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Export annotations")
        self.setMinimumWidth(440)
        remembered = (get_preference(EXPORT_FORMATS_KEY) or ",".join(DEFAULT_FORMATS)).split(",")
        group = QGroupBox("Formats")
        column = QVBoxLayout(group)
        self.boxes: dict[str, QCheckBox] = {}
        for key, text in EXPORT_FORMATS.items():
            box = QCheckBox(text)
            box.setChecked(key in remembered)
            box.toggled.connect(self._update)
            column.addWidget(box)
            self.boxes[key] = box
        self.folder = QLineEdit(folder or get_preference(EXPORT_FOLDER_KEY) or "")
        self.folder.setPlaceholderText("folder to export into")
        self.folder.textChanged.connect(self._update)
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        note = QLabel(NAMING)
        note.setWordWrap(True)
        note.setStyleSheet("color: #808080; font-size: 11px;")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(group)
        layout.addWidget(QLabel("Folder"))
        layout.addLayout(row)
        layout.addWidget(note)
        layout.addWidget(self.buttons)
        self._update()

    def formats(self) -> list[str]:
        return [key for key, box in self.boxes.items() if box.isChecked()]

    def _update(self) -> None:
        self.export_button.setEnabled(bool(self.formats()) and bool(self.folder.text().strip()))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _accept(self) -> None:
        set_preference(EXPORT_FORMATS_KEY, ",".join(self.formats()))
        set_preference(EXPORT_FOLDER_KEY, self.folder.text().strip())
        self.accept()


def summary(written: dict[str, list[Path]], notes: dict[str, str]) -> str:
    """'exported 3 PNG, 1 COCO, measurements.csv/.json; no DICOM-SEG: source is not DICOM'."""
    done = [f"{len(paths)} {SHORT_NAMES.get(key, key)}" for key, paths in written.items()
            if paths and key != "measurements"]
    if written.get("measurements"):
        done.append("measurements.csv/.json")
    skipped = [f"no {SHORT_NAMES.get(key, key)}: {why}" for key, why in notes.items()]
    text = "exported " + ", ".join(done) if done else "nothing exported"
    return "; ".join([text, *skipped])


class ExportCommands:
    """MainWindow mixin: the Export command and the background export it starts."""

    def on_export(self) -> None:
        if self.project is None:
            self.statusBar().showMessage("nothing to export: open a folder first", 4000)
            return
        dialog = ExportDialog(self)
        self.export_dialog = dialog
        dialog.accepted.connect(lambda: self.export_to(dialog.folder.text().strip(), dialog.formats()))
        dialog.setModal(False)
        dialog.show()

    def export_to(self, out_dir: str | Path, formats: list[str] | tuple[str, ...] = DEFAULT_FORMATS) -> None:
        """Write the formats in a background thread; ``export_done`` reports."""
        if self.project is None:
            return
        self.save_current(reason="export")
        project = self.project
        self.status.set_busy("exporting")

        def run() -> None:
            try:
                result = project.export(out_dir, formats=tuple(formats))
            except Exception as exc:
                result = exc
            self.export_done.emit(result)

        threading.Thread(target=run, name="lungsam-export", daemon=True).start()

    def _export_finished(self, result) -> None:
        self.status.set_busy("")
        if isinstance(result, Exception):
            self.show_error(f"export failed: {result}")
        else:
            notes = dict(self.project.notes) if self.project is not None else {}
            self.statusBar().showMessage(summary(result, notes), 10000)
