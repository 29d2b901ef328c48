"""Segment the folder: zero-click on every new image, in the background, behind the user.

Design (why the current image keeps priority):

- The job is a QObject in its OWN QThread with its OWN :class:`engine.predict.Predictor` on
  the same (read-only) LoadedModel and no embedding cache, so the interactive
  worker's latest-wins box-to-mask path never queues behind it and the folder's embeddings
  never evict the current image's.
- It works on a few images at a time (:func:`engine.propose.propose_many`: decoding pipelined
  in threads, one model worker per core, each with one torch thread and its own predictor) and
  each worker, before an image, waits while the window holds the job: the window calls
  :meth:`FolderJob.hold` on every box/edit drag move, click, proposal and image change, and
  :meth:`FolderJob.release` once the mask is in. A hold expires by itself
  (:data:`HOLD_SECONDS`), so a lost release can slow the job, never stop it.
- Results go back to the GUI thread as signals; the WINDOW saves them (as it saves edits), so
  every write to the store is ordered with the user's own saves and an image the user
  touched meanwhile is never overwritten. Nothing here writes.
- ``cancel()`` stops after the images in hand (one per model worker); each save is atomic in
  the store, so a cancel leaves every image either untouched or fully pre-segmented.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from app.gui.annotate.loader import load_with_content
from app.gui.annotate.zero_click import lung_masks, saved_prompts
from engine.imaging import LoadedImage

if TYPE_CHECKING:
    from engine.propose import AutoResult

HOLD_SECONDS = 1.0
"""How long one hold pauses the job unless renewed (each mouse move of a drag renews it)."""
JOB_CACHE_BYTES = 0
"""A folder pass embeds each image once: nothing to cache, and no image hash to compute."""


@dataclass(frozen=True)
class FolderResult:
    """One image's outcome: masks by store label and the prompts to save, or ``error``."""

    rel_path: str
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    prompts: dict[str, Any] = field(default_factory=dict)
    quality: float = 0.0
    problem: str | None = None  # the proposal's own note (one lung, none found)
    error: str | None = None  # unreadable file: the message for the image list
    image_content: tuple[str, int] | None = None  # (sha256, size) of the file the masks were drawn on


@dataclass(frozen=True)
class FolderProgress:
    done: int
    total: int
    unreadable: int
    images_per_second: float
    seconds_left: float | None


@dataclass(frozen=True)
class FolderSummary:
    done: int
    total: int
    unreadable: int
    cancelled: bool
    seconds: float
    error: str | None = None  # the job itself failed (a message, never a traceback)


class FolderJob(QObject):
    """Lives in its own QThread; :meth:`start` returns at once, signals report back."""

    result = Signal(object)  # FolderResult
    progress = Signal(object)  # FolderProgress
    finished = Signal(object)  # FolderSummary

    _start = Signal(object, str, object, object)

    def __init__(self) -> None:
        super().__init__()
        self.loader: Callable[[Path], LoadedImage] = load_with_content
        self._cancel = threading.Event()
        self._held_until = 0.0
        self._hold_lock = threading.Lock()
        self._running = threading.Event()
        self.held_seconds = 0.0  # how long holds paused the job (tests and the status line)
        self._start.connect(self._run)

    # -- called from the GUI thread ------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running.is_set()

    def start(self, model: Any, device: str, items: list[tuple[str, Path]], style: str | None) -> None:
        """Zero-click ``items`` ((rel_path, file) pairs) with ``model`` on ``device``."""
        self._cancel.clear()
        self._running.set()
        self._start.emit(model, device, list(items), style)

    def cancel(self) -> None:
        self._cancel.set()
        self.release()

    def hold(self, seconds: float = HOLD_SECONDS) -> None:
        """Pause before the next image for ``seconds`` (renewed by each call)."""
        with self._hold_lock:
            self._held_until = max(self._held_until, time.monotonic() + seconds)

    def release(self) -> None:
        with self._hold_lock:
            self._held_until = 0.0

    # -- job thread and its model workers --------------------------------------------------
    def _wait_for_release(self) -> None:
        """Block while held (or until cancelled); each model worker calls it before an image."""
        while not self._cancel.is_set():
            with self._hold_lock:
                left = self._held_until - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.01))

    def _wait_while_held(self) -> None:
        start = time.monotonic()
        self._wait_for_release()
        self.held_seconds += time.monotonic() - start

    @Slot(object, str, object, object)
    def _run(self, model: Any, device: str, items: list[tuple[str, Path]], style: str | None) -> None:
        start = time.perf_counter()
        done = unreadable = 0
        error = None
        try:
            done, unreadable = self._segment(model, device, items, style, start)
        except Exception as exc:  # the job reports; the window shows one line
            error = f"segment folder stopped: {exc}"
        cancelled = self._cancel.is_set() and done < len(items)
        self._running.clear()
        self.finished.emit(FolderSummary(done, len(items), unreadable, cancelled, time.perf_counter() - start, error))

    def _segment(self, model: Any, device: str, items: list[tuple[str, Path]], style: str | None, start: float) -> tuple[int, int]:
        from engine.predict import EmbeddingCache, Predictor
        from engine.propose import default_workers, propose_many

        predictor = Predictor(model, device=device, cache=EmbeddingCache(max_bytes=JOB_CACHE_BYTES))
        rel_of = {path: rel for rel, path in items}
        self.held_seconds = 0.0
        results = cast("Generator[AutoResult, None, None]", propose_many(
            predictor, [p for _, p in items], style, prefetch=2, loader=self.loader, cancel=self._cancel,
            workers=default_workers(), gate=self._wait_for_release))
        try:
            return self._drain(results, rel_of, len(items), start)
        finally:
            results.close()  # stops the decode threads on a cancel

    def _drain(self, results: Generator[AutoResult, None, None], rel_of: dict[Path, str], total: int, start: float) -> tuple[int, int]:
        done = unreadable = 0
        while True:
            self._wait_while_held()
            if self._cancel.is_set():
                break
            auto = next(results, None)
            if auto is None:
                break
            rel = rel_of[auto.path]
            if auto.ok and auto.proposal is not None:
                proposal = auto.proposal
                prompts = saved_prompts(proposal, auto.quality, auto.signals, "segment folder")
                content = auto.image.source if auto.image is not None else None
                self.result.emit(FolderResult(rel, lung_masks(proposal), prompts, auto.quality, proposal.problem,
                                              image_content=content))
            else:
                unreadable += 1
                self.result.emit(FolderResult(rel, error=auto.error or "cannot be read"))
            done += 1
            busy = max(time.perf_counter() - start - self.held_seconds, 1e-6)
            rate = done / busy
            left = (total - done) / rate if rate > 0 else None
            self.progress.emit(FolderProgress(done, total, unreadable, rate, left))
        return done, unreadable
