"""Image embeddings cached in memory (LRU, bounded in bytes) and optionally on disk.

Keys combine the image content hash and the model hash (after micro-sam), so switching
models or editing pixels can never serve a stale embedding.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engine.atomic import atomic_write_with


def image_hash(image: np.ndarray) -> str:
    """Content hash of the pixels, shape and dtype."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str((image.shape, image.dtype.str)).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


@dataclass(frozen=True)
class CachedEmbedding:
    """Encoder output for one image (kept on the CPU) and the sizes to map masks back."""

    features: torch.Tensor  # 1 x C x h x w
    input_size: tuple[int, int]
    original_size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return self.features.numel() * self.features.element_size()


class EmbeddingCache:
    """Thread-safe LRU of embeddings; ``max_bytes`` bounds memory (default 512 MiB)."""

    def __init__(self, max_bytes: int = 512 << 20, disk_dir: str | Path | None = None) -> None:
        self.max_bytes = max_bytes
        self.disk_dir = Path(disk_dir) if disk_dir else None
        self._items: OrderedDict[str, CachedEmbedding] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def stores(self) -> bool:
        """Whether anything put here can be read back (memory or disk): a predictor skips the
        image hash (~5 ms for a 2048 x 2048 image) when it cannot."""
        return self.max_bytes > 0 or self.disk_dir is not None

    @staticmethod
    def key(image_digest: str, model_hash: str) -> str:
        return f"{model_hash[:32]}-{image_digest}"

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> CachedEmbedding | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return item
        item = self._read_disk(key)
        with self._lock:
            if item is None:
                self.misses += 1
                return None
            self.hits += 1
        self._insert(key, item)
        return item

    def put(self, key: str, item: CachedEmbedding) -> None:
        self._insert(key, item)
        self._write_disk(key, item)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def _insert(self, key: str, item: CachedEmbedding) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = item
            self._bytes += item.nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def _disk_path(self, key: str) -> Path | None:
        return self.disk_dir / f"{key}.safetensors" if self.disk_dir else None

    def _write_disk(self, key: str, item: CachedEmbedding) -> None:
        path = self._disk_path(key)
        if path is None or path.exists():
            return
        sizes = torch.tensor([*item.input_size, *item.original_size], dtype=torch.int64)
        try:
            atomic_write_with(
                path,
                lambda tmp: save_file({"features": item.features.contiguous(), "sizes": sizes}, str(tmp)),
            )
        except OSError:
            pass  # a full or read-only disk only costs us the disk cache

    def _read_disk(self, key: str) -> CachedEmbedding | None:
        path = self._disk_path(key)
        if path is None or not path.is_file():
            return None
        try:
            data = load_file(str(path))
            s = [int(v) for v in data["sizes"]]
            return CachedEmbedding(data["features"], (s[0], s[1]), (s[2], s[3]))
        except (SafetensorError, OSError, KeyError, ValueError, RuntimeError):
            path.unlink(missing_ok=True)
            return None
