"""The compare view: one image, one live box, two models side by side.

Left model A (default: ``lungsam-compact-fp32``, the FP32 twin of the shipped INT8 model: the
same Stage 2 weights before the INT8 export), right model B (default: the shipped INT8
``lungsam-compact-int8``), so the default pair is one model in two precisions. A box dragged
on either canvas goes to both (each model in its own worker, latest wins); between them the
Dice and IoU of the two masks, and on both canvases the pixels only one model draws
(magenta). Why: the compression is shown live, not as a README number.
"""

from __future__ import annotations

import itertools

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.gui.annotate.worker import PredictRequest
from app.gui.compare.side import CompareSide

DEFAULT_A = "lungsam-compact-fp32"
DEFAULT_B = "lungsam-compact-int8"


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(Dice, IoU) of two bool masks; 1.0 for two empty masks."""
    inter = int(np.logical_and(a, b).sum())
    total = int(a.sum()) + int(b.sum())
    union = total - inter
    return (1.0 if total == 0 else 2 * inter / total), (1.0 if union == 0 else inter / union)


class CompareWindow(QWidget):
    """Two :class:`CompareSide` panes on the same image; ``send_box`` drives both."""

    def __init__(self, model_a: str | None = DEFAULT_A, model_b: str | None = DEFAULT_B,
                 device: str = "auto", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("LungSAM - compare models")
        self.resize(1200, 680)
        self.sides = (
            CompareSide(model_a, device, QColor(60, 170, 255), self),
            CompareSide(model_b, device, QColor(255, 200, 40), self),
        )
        self.metrics = QLabel("draw a box on either image", self)
        self.metrics.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.dice: float | None = None
        self.iou: float | None = None
        self._ids = itertools.count(1)
        self._image_id: int | None = None
        self._last_box: tuple[float, float, float, float] | None = None
        row = QHBoxLayout()
        for side in self.sides:
            row.addWidget(side.widget, 1)
            side.canvas.box_dragged.connect(self._box_dragged)
            side.changed.connect(self._refresh)
            side.failed.connect(self.metrics.setText)
        layout = QVBoxLayout(self)
        layout.addLayout(row, 1)
        layout.addWidget(self.metrics)

    def set_image(self, pixels: np.ndarray) -> None:
        self._image_id = next(self._ids)
        for side in self.sides:
            side.set_image(self._image_id, pixels)
            side.show_difference(None)
        self.dice = self.iou = None

    def _box_dragged(self, box: tuple[float, float, float, float] | None, final: bool) -> None:
        if box is not None:
            self.send_box(box, final)

    def send_box(self, box: tuple[float, float, float, float], final: bool = True) -> int:
        """Send ``box`` (original pixels) to both models; returns the request id."""
        if self._image_id is None:
            return -1
        self._last_box = box
        request = PredictRequest(next(self._ids), self._image_id, "compare", tuple(float(v) for v in box), final=final)
        for side in self.sides:
            side.submit(request)
        return request.request_id

    def _refresh(self) -> None:
        a, b = self.sides
        if a.mask is None or b.mask is None or a.request_id != b.request_id:
            return
        self.dice, self.iou = agreement(a.mask, b.mask)
        diff = np.logical_xor(a.mask, b.mask)
        for side in self.sides:
            side.show_difference(diff)
        self.metrics.setText(
            f"Dice {self.dice:.4f}   IoU {self.iou:.4f}   pixels only one model draws: {int(diff.sum()):,} (magenta)"
        )

    def closeEvent(self, event) -> None:
        for side in self.sides:
            side.shutdown()
        super().closeEvent(event)


def first_image(paths: list[str]) -> np.ndarray | None:
    """Pixels of the first image among ``paths`` (files, or folders searched recursively)."""
    from pathlib import Path

    from engine.imaging import is_supported_image, load_image

    for raw in paths:
        path = Path(raw)
        files = sorted(f for f in path.rglob("*") if f.is_file() and is_supported_image(f)) if path.is_dir() else [path]
        if files:
            return load_image(files[0]).pixels
    return None


def run_compare(model_a: str | None, model_b: str | None, paths: list[str], device: str = "auto") -> int:
    """``lungsam gui [PATHS] --compare [A B]``: the compare view on the first image given
    (None for a model: the default pair's side)."""
    import sys

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LungSAM")
    window = CompareWindow(model_a or DEFAULT_A, model_b or DEFAULT_B, device)
    pixels = first_image(paths)
    if pixels is not None:
        window.set_image(pixels)
    window.show()
    return int(app.exec())
