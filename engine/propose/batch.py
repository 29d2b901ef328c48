"""Zero-click on many images, pipelined: decode ahead, embed and propose, score.

Why threads, and why several model workers of one torch thread each: a 2048 x 2048 16-bit
DICOM costs ~15 ms to decode and window (pydicom, numpy and OpenCV release the GIL for most
of it), the model ~100 ms of one core per image, most of it in small decoder operations that
gain little from a second torch thread (while its idle thread spins and starves the decoding
thread). Measured on two cores (``benchmarks/folder_throughput.py``): one model worker with two
torch threads 6.5 images/s, one with one thread 8.8, two workers of one thread each more (the
README has the figure). Each worker has its own :class:`Predictor` on the same model.
Results come back in input order, one per path, an unreadable file included (with its
message), so a caller lists it and goes on.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from engine.errors import LungSamError
from engine.imaging import LoadedImage, load_image
from engine.predict import EmbeddingCache, Predictor
from engine.propose.proposer import LungProposal
from engine.propose.quality import QualitySignals, propose_scored

ImageLoader = Callable[[Path], LoadedImage]


@dataclass(frozen=True)
class AutoResult:
    """One image's zero-click result: ``proposal`` and ``quality`` (0..1), or ``error`` (the
    file could not be read or segmented; a message for the user, no traceback)."""

    path: Path
    image: LoadedImage | None
    proposal: LungProposal | None
    signals: QualitySignals | None
    quality: float
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None


def _load(loader: ImageLoader, path: Path) -> LoadedImage | LungSamError:
    try:
        return loader(path)
    except LungSamError as exc:
        return exc
    except (OSError, ValueError, MemoryError) as exc:  # a loader should not, but a file never crashes a batch
        return LungSamError(f"{path.name}: cannot be read ({exc})")


def segment_one(predictor: Predictor, path: Path, image: LoadedImage, style: str | None) -> AutoResult:
    """Embed, propose and score one decoded image."""
    start = time.perf_counter()
    try:
        predictor.set_image(image.pixels)
        proposal, signals, quality = propose_scored(predictor, style)
    except LungSamError as exc:
        return AutoResult(path, image, None, None, 0.0, str(exc), time.perf_counter() - start)
    return AutoResult(path, image, proposal, signals, quality, None, time.perf_counter() - start)


def default_workers() -> int:
    """Model workers for a batch on this machine: one per core, at most two (a third gains
    nothing on the decoder's small operations and costs a predictor's memory)."""
    return max(1, min(2, os.cpu_count() or 1))


def propose_many(
    predictor: Predictor,
    paths: Iterable[Path],
    style: str | None = None,
    prefetch: int = 3,
    loader: ImageLoader = load_image,
    cancel: threading.Event | None = None,
    workers: int = 1,
    gate: Callable[[], None] | None = None,
) -> Iterator[AutoResult]:
    """Zero-click results for ``paths`` in order; stops early (after the images in work) when
    ``cancel`` is set. ``prefetch`` images are decoded ahead in background threads.

    ``workers`` > 1: that many images are segmented at once, each worker thread with its own
    predictor (no embedding cache: a batch embeds each image once) and one torch thread;
    ``predictor`` gives the model and device. ``workers`` 1: ``predictor`` itself, with the
    torch threads it has.
    """
    paths = list(paths)
    workers = max(1, workers)
    local = threading.local()

    def start_worker() -> None:
        if workers > 1:
            import torch

            torch.set_num_threads(1)  # this thread only: the caller's threads keep theirs

    def worker_predictor() -> Predictor:
        if workers == 1:
            return predictor
        own = getattr(local, "predictor", None)
        if own is None:
            own = local.predictor = Predictor(predictor.model, device=predictor.device, cache=EmbeddingCache(max_bytes=0))
        return own

    def work(path: Path, decoded: Future) -> AutoResult:
        start = time.perf_counter()
        loaded = decoded.result()
        if isinstance(loaded, LungSamError):
            return AutoResult(path, None, None, None, 0.0, str(loaded), time.perf_counter() - start)
        if gate is not None:
            gate()
        return segment_one(worker_predictor(), path, loaded, style)

    decode_threads = max(1, min(prefetch, 2))
    with ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="lungsam-decode") as decode_pool, \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lungsam-segment",
                               initializer=start_worker) as model_pool:
        pending: deque[tuple[Future, Future]] = deque()
        index = 0

        def top_up() -> None:
            nonlocal index
            while index < len(paths) and len(pending) < workers + prefetch:
                decoded = decode_pool.submit(_load, loader, paths[index])
                pending.append((decoded, model_pool.submit(work, paths[index], decoded)))
                index += 1

        top_up()
        try:
            while pending:
                if cancel is not None and cancel.is_set():
                    return
                _, result = pending[0]
                value = result.result()
                pending.popleft()
                top_up()
                yield value
        finally:  # a cancel, an early close or an error: nothing queued starts any more
            for decoded, result in pending:
                result.cancel()
                decoded.cancel()
