"""Zero-click on many images, pipelined: decode ahead, embed and propose, score.

Why threads: on two cores a 2048 x 2048 16-bit DICOM costs tens of milliseconds to decode and
window (pydicom, numpy and OpenCV release the GIL for most of it), about as much as the
compact encoder costs to embed it. Decoding the next images in a small thread pool while the
model works on the current one keeps both cores busy. Results come back in input order, one
per path, an unreadable file included (with its message), so a caller lists it and goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from engine.errors import LungSamError
from engine.imaging import LoadedImage, load_image
from engine.predict import Predictor
from engine.propose.proposer import LungProposal, propose_lungs
from engine.propose.quality import QualitySignals, quality_score, quality_signals

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
        proposal = propose_lungs(predictor, style)
        signals = quality_signals(predictor, proposal, style)
    except LungSamError as exc:
        return AutoResult(path, image, None, None, 0.0, str(exc), time.perf_counter() - start)
    quality = quality_score(signals, proposal.found)
    return AutoResult(path, image, proposal, signals, quality, None, time.perf_counter() - start)


def propose_many(
    predictor: Predictor,
    paths: Iterable[Path],
    style: str | None = None,
    prefetch: int = 3,
    loader: ImageLoader = load_image,
    cancel: threading.Event | None = None,
) -> Iterator[AutoResult]:
    """Zero-click results for ``paths`` in order; stops early (after the current image) when
    ``cancel`` is set. ``prefetch`` images are decoded ahead in background threads."""
    paths = list(paths)
    with ThreadPoolExecutor(max_workers=max(1, min(prefetch, 2)), thread_name_prefix="lungsam-decode") as pool:
        pending: list[tuple[Path, Future]] = []
        index = 0

        def top_up() -> None:
            nonlocal index
            while index < len(paths) and len(pending) < prefetch:
                pending.append((paths[index], pool.submit(_load, loader, paths[index])))
                index += 1

        top_up()
        while pending:
            if cancel is not None and cancel.is_set():
                for _, future in pending:
                    future.cancel()
                return
            path, future = pending.pop(0)
            top_up()
            start = time.perf_counter()
            loaded = future.result()
            if isinstance(loaded, LungSamError):
                yield AutoResult(path, None, None, None, 0.0, str(loaded), time.perf_counter() - start)
                continue
            yield segment_one(predictor, path, loaded, style)
