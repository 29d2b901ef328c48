"""The model worker: a QObject living in its own QThread that owns the interactive Predictor.

The GUI never calls the model. It posts requests and gets signals back:

- ``post_embed(image_id, pixels)`` and ``submit(PredictRequest)`` put the request in a
  *latest-wins mailbox* (one slot per label, lock-protected) and emit a queued wake-up
  signal only when none is pending. While a box is dragged, each mouse move replaces the
  waiting request of its label, so the worker always works on the newest box and stale
  boxes are dropped without ever queueing (``dropped`` counts them).
- An embed always runs before a waiting prediction; a prediction for an image that is not
  the embedded one is dropped.
- ``post_propose(ProposeRequest)``: zero-click on the embedded image (both lungs proposed,
  then scored, :mod:`engine.propose`), in its own one-slot mailbox (pressing A twice runs
  once); it runs after a waiting embed and before waiting box predictions.
- ``load_model(spec, device)`` runs in the worker thread too; ``model_ready`` carries the
  loaded model so the prefetcher can share it.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from engine.errors import LungSamError
from engine.predict import EmbeddingCache
from engine.sam import DEFAULT_STYLE


@dataclass(frozen=True)
class PredictRequest:
    """One prompt for one label, in original-image pixels (x, y)."""

    request_id: int
    image_id: int
    label: str
    box: tuple[float, float, float, float] | None
    points: tuple[tuple[float, float], ...] = ()
    point_labels: tuple[int, ...] = ()
    mask_input: np.ndarray | None = field(default=None, compare=False)  # (1, 1, h, w) logits
    final: bool = False
    sent: float = field(default_factory=time.perf_counter)
    style: str | None = None  # the model's mask style (annotation convention); None = its first
    click: bool = False  # the last point corrects a box's mask: the mask changes only around it


@dataclass(frozen=True)
class PredictResult:
    request: PredictRequest
    mask: np.ndarray  # bool H x W
    low_res_logits: np.ndarray  # (1, 1, h, w)
    score: float
    seconds: float  # decoder time inside the predictor


@dataclass(frozen=True)
class ProposeRequest:
    """Propose both lungs of image ``image_id`` with no prompt."""

    request_id: int
    image_id: int
    style: str | None = None
    sent: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class ProposeResult:
    request: ProposeRequest
    proposal: Any  # engine.propose.LungProposal
    signals: Any  # engine.propose.QualitySignals
    quality: float  # 0..1, higher = more trustworthy; 0 when nothing was found


@dataclass(frozen=True)
class ModelInfo:
    name: str
    device: str
    model_hash: str
    source: str
    model: Any  # engine LoadedModel, shared with the prefetcher
    styles: tuple[str, ...] = (DEFAULT_STYLE,)


class LatestMailbox:
    """One slot per key: ``put`` replaces what waits under the same key, ``take`` pops the
    oldest key. Thread-safe; never grows beyond the number of keys (labels)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def put(self, item: Any, key: Any = None) -> bool:
        """Store ``item``; True when it replaced a waiting (now dropped) item of that key."""
        with self._lock:
            replaced = key in self._items
            self._items.pop(key, None)
            self._items[key] = item
            return replaced

    def take(self) -> tuple[bool, Any]:
        with self._lock:
            if not self._items:
                return False, None
            return True, self._items.popitem(last=False)[1]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class ModelWorker(QObject):
    """Owns the Predictor; every slot runs in the worker thread."""

    model_ready = Signal(object)  # ModelInfo
    model_failed = Signal(str)
    embedded = Signal(int, object)  # image_id, EmbeddingInfo
    embed_failed = Signal(int, str)
    predicted = Signal(object)  # PredictResult
    predict_failed = Signal(object, str)  # PredictRequest, message
    proposed = Signal(object)  # ProposeResult
    propose_failed = Signal(object, str)  # ProposeRequest, message
    busy = Signal(str)  # what the worker is doing now ("" when idle)

    _wake = Signal()
    _load = Signal(object, str)

    def __init__(self, cache: EmbeddingCache) -> None:
        super().__init__()
        self.cache = cache
        self.predictor = None
        self.image_id: int | None = None
        self._embeds = LatestMailbox()
        self._predicts = LatestMailbox()
        self._proposals = LatestMailbox()
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self.dropped = 0  # predictions replaced in the mailbox or for a stale image
        self.processed = 0  # predictions actually run
        self._wake.connect(self._drain)
        self._load.connect(self._load_model)

    # -- called from the GUI thread ------------------------------------------------------
    def load_model(self, spec: str | None, device: str = "auto") -> None:
        self._load.emit(spec, device)

    def post_embed(self, image_id: int, pixels: np.ndarray) -> None:
        self._embeds.put((image_id, pixels))
        self._poke()

    def submit(self, request: PredictRequest) -> None:
        """Queue ``request``; a waiting request of the same label is dropped (latest wins)."""
        if self._predicts.put(request, key=request.label):
            self.dropped += 1
        self._poke()

    def post_propose(self, request: ProposeRequest) -> None:
        """Queue a zero-click proposal; a waiting one is dropped (latest wins)."""
        self._proposals.put(request)
        self._poke()

    def _poke(self) -> None:
        with self._wake_lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        self._wake.emit()

    # -- worker thread ---------------------------------------------------------------------
    @Slot(object, str)
    def _load_model(self, spec: str | None, device: str) -> None:
        from engine.device import resolve_device
        from engine.models import load_model
        from engine.predict import Predictor

        self.busy.emit("loading model")
        try:
            model = load_model(spec)
            # Move it first: a failure here (CUDA out of memory) must not leave the predictor
            # half-swapped (new model recorded, old network still running under its hash).
            model.sam.to(resolve_device(device))
            if self.predictor is None:
                self.predictor = Predictor(model, device=device, cache=self.cache)
            else:
                self.predictor.set_model(model, device=device)
            self.image_id = None
            info = ModelInfo(model.name, str(self.predictor.device), model.model_hash, model.source, model,
                             tuple(self.predictor.mask_styles))
        except LungSamError as exc:
            self.busy.emit("")
            self.model_failed.emit(str(exc))
            return
        except Exception as exc:
            traceback.print_exc()
            self.busy.emit("")
            self.model_failed.emit(f"{spec}: the model could not be loaded ({exc})")
            return
        self.busy.emit("")
        self.model_ready.emit(info)

    @Slot()
    def _drain(self) -> None:
        with self._wake_lock:
            self._wake_pending = False
        full, job = self._embeds.take()
        if full:
            self._embed(*job)
        full, proposal = self._proposals.take()
        if full:
            self._propose(proposal)
        full, request = self._predicts.take()
        if full:
            self._predict(request)
        if len(self._predicts):  # other labels wait; a new embed may still go first
            self._poke()

    def _embed(self, image_id: int, pixels: np.ndarray) -> None:
        if self.predictor is None:
            return
        self.busy.emit("embedding")
        try:
            info = self.predictor.set_image(pixels)
        except Exception as exc:
            self.image_id = None
            self.busy.emit("")
            self.embed_failed.emit(image_id, str(exc))
            return
        self.image_id = image_id
        self.busy.emit("")
        self.embedded.emit(image_id, info)

    def _propose(self, request: ProposeRequest) -> None:
        from engine.propose import propose_scored

        if self.predictor is None or request.image_id != self.image_id:
            self.propose_failed.emit(request, "the model was not ready for this image; press A again")
            return
        self.busy.emit("proposing")
        try:
            proposal, signals, quality = propose_scored(self.predictor, request.style)
        except Exception as exc:  # any failure is a status message, never a traceback
            self.busy.emit("")
            self.propose_failed.emit(request, f"no proposal: {exc}")
            return
        self.busy.emit("")
        self.proposed.emit(ProposeResult(request, proposal, signals, quality))

    def _predict(self, request: PredictRequest) -> None:
        if self.predictor is None or request.image_id != self.image_id:
            self.dropped += 1
            if request.final:  # the user must know this box gave no mask
                self.predict_failed.emit(request, "the model was not ready for this image; draw the box again")
            return
        try:
            pred = self.predictor.predict(
                boxes=request.box,
                points=request.points or None,
                point_labels=request.point_labels or None,
                mask_input=request.mask_input,
                style=request.style,
                focus=request.click and request.mask_input is not None and bool(request.points),
            )
        except Exception as exc:
            self.predict_failed.emit(request, str(exc))
            return
        self.processed += 1
        self.predicted.emit(
            PredictResult(request, pred.masks[0, 0], pred.low_res_logits[:1, :1], float(pred.scores[0, 0]), pred.seconds)
        )
