"""Image decoding and prefetching in a second QThread, so the GUI never decodes or embeds.

``request(token, path)`` asks for the image to show (latest wins: pressing N ten times
decodes one image, not ten). After each shown image the window asks ``prefetch(paths)``:
the neighbours are decoded into a small LRU and, when a model is set, their embeddings
are computed into the shared :class:`EmbeddingCache` by a second Predictor on the same
(read-only) model, so the interactive worker is never blocked by a prefetch. A new request
always goes before the remaining prefetch work.

Memory cap: at most ``max_images`` decoded images (default 3: current, next, previous) and
``max_bytes`` of pixels (default 1 GiB) are kept; older ones are evicted.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from app.gui.annotate.worker import LatestMailbox
from engine.errors import LungSamError
from engine.imaging import LoadedImage, load_image
from engine.predict import EmbeddingCache
from engine.project import file_content


def _file_key(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return path
    return f"{path}\0{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def load_with_content(path: str | Path) -> LoadedImage:
    """The decoded image with the (sha256, size) of its file bytes, so masks drawn on it are
    tied to this content (a file replaced later does not inherit them). The window's loader
    and the folder job both read images this way."""
    content = file_content(Path(path))
    image = load_image(path)
    image.source = content
    return image


def image_nbytes(image: LoadedImage) -> int:
    return int(image.pixels.nbytes + (image.raw.nbytes if image.raw is not None else 0))


class ImageLoader(QObject):
    loaded = Signal(int, object)  # token, LoadedImage
    failed = Signal(int, str, str)  # token, path, message
    prefetched = Signal(str)  # path whose pixels (and embedding, with a model) are ready

    _wake = Signal()

    def __init__(self, cache: EmbeddingCache, max_images: int = 3, max_bytes: int = 1 << 30) -> None:
        super().__init__()
        self.cache = cache
        self.max_images = max_images
        self.max_bytes = max_bytes
        self._images: OrderedDict[str, LoadedImage] = OrderedDict()
        self._images_lock = threading.Lock()
        self._requests = LatestMailbox()
        self._prefetch: list[str] = []
        self._prefetch_lock = threading.Lock()
        self._model = None
        self._device = None
        self._predictor = None
        self._model_lock = threading.Lock()
        self._wake.connect(self._drain)

    # -- called from the GUI thread ------------------------------------------------------
    def request(self, token: int, path: str | Path) -> None:
        self._requests.put((token, str(path)))
        self._wake.emit()

    def prefetch(self, paths: list[str | Path]) -> None:
        with self._prefetch_lock:
            self._prefetch = [str(p) for p in paths]
        self._wake.emit()

    def set_model(self, model, device: str) -> None:
        """Share the interactive worker's model (never mutated by us: read-only inference)."""
        with self._model_lock:
            self._model, self._device, self._predictor = model, device, None

    def cached_paths(self) -> list[str]:
        with self._images_lock:
            return [key.split("\0", 1)[0] for key in self._images]

    # -- loader thread ---------------------------------------------------------------------
    @Slot()
    def _drain(self) -> None:
        full, job = self._requests.take()
        if full:
            token, path = job
            try:
                image = self._get(path)
            except LungSamError as exc:
                self.failed.emit(token, path, str(exc))
            except Exception as exc:
                self.failed.emit(token, path, f"{Path(path).name}: {exc}")
            else:
                self.loaded.emit(token, image)
            self._wake.emit()  # come back for the prefetch list after any newer request
            return
        with self._prefetch_lock:
            path = self._prefetch.pop(0) if self._prefetch else None
        if path is None:
            return
        try:
            image = self._get(path)
            self._embed(image)
        except Exception:
            pass
        else:
            self.prefetched.emit(path)
        self._wake.emit()

    def _get(self, path: str) -> LoadedImage:
        """Decoded pixels of ``path`` with the sha256 of its bytes; the cache is keyed by the
        file's identity (size, mtime, inode), so an image replaced on disk is read again."""
        key = _file_key(path)
        with self._images_lock:
            image = self._images.get(key)
            if image is not None:
                self._images.move_to_end(key)
                return image
        image = load_with_content(path)
        with self._images_lock:
            self._images[key] = image
            total = sum(image_nbytes(i) for i in self._images.values())
            while len(self._images) > 1 and (len(self._images) > self.max_images or total > self.max_bytes):
                _, old = self._images.popitem(last=False)
                total -= image_nbytes(old)
        return image

    def _embed(self, image: LoadedImage) -> None:
        from engine.predict import Predictor

        with self._model_lock:
            if self._model is None:
                return
            if self._predictor is None:
                self._predictor = Predictor(self._model, device=self._device, cache=self.cache)
            predictor = self._predictor
        predictor.prefetch(image.pixels)
