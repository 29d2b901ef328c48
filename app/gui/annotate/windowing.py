"""Fast re-windowing of high-bit-depth images for display (Qt-free).

Dragging window/level on a 4k x 5k 16-bit radiograph must not stall the GUI: integer-valued
raw data is shifted once into a uint16 index image, and each new window is a 64 Ki-entry
lookup table built with :func:`engine.imaging.loader.apply_window` itself, so the display matches the
loader's pixels exactly. Non-integer data falls back to ``apply_window`` on the full array.
The model keeps seeing the file's own window (``LoadedImage.pixels``); re-windowing only
changes what is shown. 8-bit images (PNG, JPEG, RGB too) are windowed from their own grey
levels, so every image gets window/level and the auto percentile window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.imaging import LoadedImage, Window, apply_window, default_window


@dataclass(frozen=True)
class WindowPreset:
    name: str
    key: str  # how the window is derived: file, auto, full, narrow, wide


PRESETS: tuple[WindowPreset, ...] = (
    WindowPreset("File window", "file"),
    WindowPreset("Auto (0.5-99.5 %)", "auto"),
    WindowPreset("Full range", "full"),
    WindowPreset("Narrow (high contrast)", "narrow"),
    WindowPreset("Wide (low contrast)", "wide"),
)


class Windower:
    """Re-windows one image's ``raw`` values; build once per image, call ``apply`` per drag."""

    def __init__(self, image: LoadedImage) -> None:
        self._raw: np.ndarray | None = None
        if image.raw is not None and image.window is not None:
            self._raw, self.invert, self.file_window = image.raw, image.invert, image.window
            self.low, self.high = float(self._raw.min()), float(self._raw.max())
        else:
            # 8-bit PNG/JPEG: the stored grey levels are the raw values and the identity window
            # (0..255) reproduces them exactly, so washed-out exports can be windowed too. The
            # float copy is made on the first re-window only (images are opened far more often).
            self._pixels = image.pixels
            self.invert, self.file_window = False, Window(127.5, 255.0)
            self.low, self.high = float(image.pixels.min()), float(image.pixels.max())
        self._index: np.ndarray | None | bool = False  # built on the first re-window

    @property
    def raw(self) -> np.ndarray:
        if self._raw is None:
            self._raw = self._pixels.astype(np.float32)
        return self._raw

    def _lookup_index(self) -> np.ndarray | None:
        """uint16 offsets of integer-valued raw data (None when a LUT cannot represent it)."""
        if self._index is False:
            self._index = None
            sample = self.raw[:: max(1, self.raw.shape[0] // 512), :: max(1, self.raw.shape[1] // 512)]
            if self.high - self.low < 65536 and np.array_equal(sample, np.rint(sample)):
                shifted = self.raw - np.float32(self.low)
                if np.array_equal(shifted, np.rint(shifted)):
                    self._index = shifted.astype(np.uint16)
        return self._index

    def preset(self, key: str) -> Window:
        base = self.file_window
        if key == "auto":
            return default_window(self.raw)
        if key == "full":
            return Window((self.low + self.high) / 2.0, max(self.high - self.low, 1.0))
        if key == "narrow":
            return Window(base.center, max(base.width / 2.0, 1.0))
        if key == "wide":
            return Window(base.center, base.width * 2.0)
        return base

    def dragged(self, window: Window, dx: float, dy: float) -> Window:
        """Window after a mouse drag: right widens, down raises the level (like most viewers)."""
        span = max(self.high - self.low, 1.0)
        width = max(1.0, window.width * float(np.exp(dx / 300.0)))
        center = window.center + dy * span / 1000.0
        return Window(center, width)

    def apply(self, window: Window) -> np.ndarray:
        """uint8 display pixels for ``window`` (same values as ``apply_window``)."""
        index = self._lookup_index()
        if index is None:
            return apply_window(self.raw, window, self.invert)
        values = np.arange(65536, dtype=np.float32) + np.float32(self.low)
        lut = apply_window(values, window, self.invert)
        return lut[index]
