"""One side of the compare view: a model in its own worker thread, its canvas and its figures.

Each side owns a :class:`app.gui.annotate.worker.ModelWorker` (latest wins), so dragging a
box keeps both models live and a slow model never delays the fast one. Masks arrive in
original-image pixels (bool H x W), exactly the worker's Predictor output for the box sent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.gui.annotate.canvas import Canvas
from app.gui.annotate.worker import ModelInfo, ModelWorker, PredictRequest, PredictResult
from engine.predict import EmbeddingCache

MASK_LABEL = "mask"
DIFF_LABEL = "difference"


def weight_bytes(model: object) -> int | None:
    """Size of the model's weight file: the one model.json names in a folder (the box head
    beside it is no part of the model's size), or the checkpoint file; None when unknown."""
    path = Path(model.source)
    if path.is_dir():
        path = path / str((model.meta.get("weights") or {}).get("file", "weights.safetensors"))
    return path.stat().st_size if path.is_file() else None


def weight_counts(model: object) -> tuple[int, int]:
    """(all weights, trainable parameters) of a LoadedModel's SAM. An INT8 layer keeps its
    weight and bias as buffers, not parameters; both count as weights, so the two precisions
    of one model show the same number."""
    sam = model.sam
    params = sum(p.numel() for p in sam.parameters())
    int8 = sum(m.weight_int8.numel() + (0 if m.bias is None else m.bias.numel())
               for m in sam.modules() if isinstance(getattr(m, "weight_int8", None), torch.Tensor))
    trainable = sum(p.numel() for p in sam.parameters() if p.requires_grad)
    return params + int8, trainable


def precision(model: object) -> str:
    """How the model computes and how its file stores the rest: the compare view's point is
    one model in two precisions, so each side says which one it is."""
    meta = model.meta
    stored = (meta.get("weights") or {}).get("storage_dtype", "float32")
    if model.is_int8:
        layers = len((meta.get("int8") or {}).get("layers") or [])
        return f"INT8 ({layers} layers, rest {'FP16' if stored == 'float16' else 'FP32'} in the file)"
    return "FP32 (stored as FP16)" if stored == "float16" else "FP32"


class CompareSide(QObject):
    """Model ``spec`` on ``canvas``; emits ``changed`` whenever a mask or a figure arrives."""

    changed = Signal()
    failed = Signal(str)

    def __init__(self, spec: str | None, device: str, color: QColor, parent: QWidget) -> None:
        super().__init__(parent)
        self.spec, self.color = spec, color
        self.worker = ModelWorker(EmbeddingCache())
        self.thread = QThread(self)
        self.thread.setObjectName("lungsam-compare")
        self.worker.moveToThread(self.thread)
        self.thread.start()
        self.info: ModelInfo | None = None
        self._image: tuple[int, np.ndarray] | None = None
        self.embedded_id: int | None = None
        self.mask: np.ndarray | None = None
        self.request_id: int | None = None
        self.embed_seconds: float | None = None
        self.box_seconds: float | None = None
        self.widget = QWidget(parent)
        self.canvas = Canvas(self.widget)
        self.title = QLabel(spec or "default model", self.widget)
        self.figures = QLabel("loading...", self.widget)
        for label in (self.title, self.figures):  # text never widens one canvas over the other
            label.setWordWrap(True)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout = QVBoxLayout(self.widget)
        layout.setContentsMargins(2, 2, 2, 2)
        for w in (self.title, self.canvas, self.figures):
            layout.addWidget(w, 1 if w is self.canvas else 0)
        self.worker.model_ready.connect(self._ready)
        self.worker.model_failed.connect(self.failed)
        self.worker.embedded.connect(self._embedded)
        self.worker.predicted.connect(self._predicted)
        # Worker signals reach methods of this GUI-thread QObject (queued), never lambdas.
        self.worker.predict_failed.connect(self._predict_failed)
        self.worker.load_model(spec, device)

    @property
    def ready(self) -> bool:
        return self.info is not None

    def set_image(self, image_id: int, pixels: np.ndarray) -> None:
        self.mask, self.request_id, self.box_seconds = None, None, None
        self._image = (image_id, pixels)
        self.canvas.set_image(pixels)
        self.worker.post_embed(image_id, pixels)

    def submit(self, request: PredictRequest) -> None:
        self.canvas.set_box(MASK_LABEL, request.box, self.color)
        self.worker.submit(request)

    def show_difference(self, diff: np.ndarray | None) -> None:
        self.canvas.set_mask(DIFF_LABEL, diff, QColor(255, 0, 255))

    def shutdown(self) -> None:
        self.thread.quit()
        self.thread.wait(30000)

    # -- worker signals (queued to the GUI thread) ------------------------------------------
    def _ready(self, info: ModelInfo) -> None:
        self.info = info
        if self._image is not None and self.embedded_id != self._image[0]:  # set before the model loaded
            self.worker.post_embed(*self._image)
        self.title.setText(f"{info.name} ({info.device})")
        self._update_figures()
        self.changed.emit()

    def _embedded(self, image_id: int, info: object) -> None:
        self.embedded_id = image_id
        if not info.from_cache:  # a cache hit says nothing about the encoder's speed
            self.embed_seconds = info.seconds
        self._update_figures()
        self.changed.emit()

    def _predicted(self, result: PredictResult) -> None:
        self.mask, self.request_id = result.mask, result.request.request_id
        self.box_seconds = result.seconds
        self.canvas.set_mask(MASK_LABEL, result.mask, self.color)
        self._update_figures()
        self.changed.emit()

    def _predict_failed(self, _request: PredictRequest, message: str) -> None:
        self.failed.emit(message)

    def _update_figures(self) -> None:
        if self.info is None:
            return
        size = weight_bytes(self.info.model)
        total, trainable = weight_counts(self.info.model)
        parts = [
            precision(self.info.model),
            f"weights file {size / 1e6:.2f} MB" if size else "weights file -",
            f"{total / 1e6:.2f} M weights, {trainable / 1e6:.2f} M trainable",
            f"embedding {self.embed_seconds * 1e3:.1f} ms" if self.embed_seconds is not None else "embedding -",
            f"box-to-mask {self.box_seconds * 1e3:.1f} ms" if self.box_seconds is not None else "box-to-mask -",
        ]
        self.figures.setText("   ".join(parts))
