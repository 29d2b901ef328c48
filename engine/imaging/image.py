"""What every image loader builds: :class:`LoadedImage` and :class:`Window`, the pixel limit,
and the array-to-image helpers the format loaders share.

The dispatcher (:mod:`engine.imaging.loader`) and the format loaders (Pillow, TIFF, DICOM)
all import from here and never from each other's dispatcher, so no loader module needs
another to be imported first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import ImageLoadError
from engine.spacing import PixelSpacing

MAX_PIXELS = 100_000_000
"""Largest image (rows x columns) we agree to decode; bigger headers are refused unread."""


@dataclass(frozen=True)
class Window:
    """Linear display window in stored-value units after the modality LUT.

    Values below ``center - width/2`` show black, above ``center + width/2`` white.
    """

    center: float
    width: float


@dataclass
class LoadedImage:
    """One decoded image, ready to show and to feed to the model.

    ``pixels``: uint8 HxW (grey) or HxWx3 (RGB). ``raw``: float32 HxW for high-bit-depth grey
    data (DICOM, 16-bit/float TIFF or PNG), else None; for DICOM it holds modality-LUT values,
    except when the file has a VOI LUT Sequence: then it holds the VOI LUT output, so that
    ``apply_window(raw, window, invert)`` still reproduces ``pixels`` exactly. ``invert`` is True
    for MONOCHROME1 (and TIFF min-is-white) data, whose low values are white. ``spacing``: the
    pixel size in mm with its provenance (DICOM only; None when the file states none).
    """

    path: Path | None
    pixels: np.ndarray
    raw: np.ndarray | None
    window: Window | None
    spacing: PixelSpacing | None
    format: str
    dicom_meta: dict[str, str] | None
    invert: bool = False
    source: tuple[str, int] | None = None
    """(sha256, size) of the file's bytes, when the reader recorded them (the GUI's loader
    does, so masks are tied to the content they were drawn on)."""

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        """(row mm, col mm) without the provenance, as distance metrics (HD95) take it."""
        return self.spacing.pair if self.spacing is not None else None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def rgb(self) -> np.ndarray:
        """uint8 HxWx3 for the model: grey is replicated (a new array); colour is returned as is."""
        if self.pixels.ndim == 2:
            return np.repeat(self.pixels[:, :, None], 3, axis=2)
        return self.pixels


# ----------------------------------------------------------------------------- windowing


def apply_window(raw: np.ndarray, window: Window, invert: bool = False) -> np.ndarray:
    """Map ``raw`` through a linear window to uint8 (clip to [c - w/2, c + w/2], scale to 0..255).

    Deterministic float32 arithmetic, so the GUI's re-windowing and the loader agree to the
    last grey level. A width <= 0 degenerates to a threshold at ``center``; NaN maps to 0
    (before inversion).
    """
    values = np.asarray(raw, dtype=np.float32)
    width = float(window.width)
    if width > 0 and np.isfinite(width):
        low = np.float32(window.center - width / 2.0)
        out = (values - low) * np.float32(255.0 / width)
    else:
        out = np.where(values > np.float32(window.center), np.float32(255), np.float32(0))
    np.clip(out, 0.0, 255.0, out=out)  # +-inf land on 255 / 0 here
    nan = np.isnan(out)  # a cheap pass; nan_to_num cost ~14 ms on a 2048 x 2048 image
    if nan.any():
        out[nan] = 0.0
    np.rint(out, out=out)
    pixels = out.astype(np.uint8)
    if invert:
        np.subtract(np.uint8(255), pixels, out=pixels)
    return pixels


def default_window(raw: np.ndarray) -> Window:
    """Robust window (0.5-99.5 percentile) for data that carries none.

    Percentiles ignore burned-in labels and collimator edges that min/max would stretch to.
    Uses a ~1 M sample subgrid so large radiographs stay fast. Near-constant data falls back
    to min/max, a constant image gets width 1 (it shows mid-grey; nothing divides by zero).
    """
    values = np.asarray(raw)
    step = max(1, int(np.sqrt(values.size / 1_000_000)))
    sample = values[::step, ::step] if values.ndim >= 2 else values[:: step * step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return Window(center=0.0, width=1.0)
    low, high = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if high <= low:
        low, high = float(sample.min()), float(sample.max())
    if high <= low:
        return Window(center=low, width=1.0)
    return Window(center=(low + high) / 2.0, width=high - low)


def sanitize_raw(values: np.ndarray, name: str) -> np.ndarray:
    """float32 copy-if-needed of ``values`` with NaN/inf set to the lowest finite value.

    Non-finite values in radiographs are padding; the minimum shows them black and keeps them
    out of the window percentiles. An image with no finite value at all is refused.
    """
    raw = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(raw)
    if not finite.all():
        if not finite.any():
            raise ImageLoadError(
                f"{name}: the image has no valid pixel values (all NaN or infinite)"
            )
        raw = raw.copy() if np.shares_memory(raw, values) else raw
        raw[~finite] = raw[finite].min()
    return raw


# ----------------------------------------------------------------------------- helpers


@contextmanager
def library_errors(name: str, reason: str) -> Iterator[None]:
    """Turn any library exception into an ImageLoadError "<name>: <reason>" (chained)."""
    try:
        yield
    except ImageLoadError:
        raise
    except MemoryError as exc:
        raise ImageLoadError(f"{name}: not enough memory to decode the image") from exc
    except Exception as exc:
        raise ImageLoadError(f"{name}: {reason}") from exc


def check_size(name: str, rows: int, cols: int, max_pixels: int) -> None:
    """Refuse empty and oversized images from their header, before decoding."""
    if rows <= 0 or cols <= 0 or rows * cols <= 1:
        raise ImageLoadError(f"{name}: the image is empty ({cols} x {rows} pixels)")
    if rows * cols > max_pixels:
        raise ImageLoadError(
            f"{name}: the image is too large ({cols} x {rows} pixels; "
            f"the limit is {max_pixels:,} pixels)"
        )


def image_from_array(arr: np.ndarray, fmt: str, name: str, invert: bool = False) -> LoadedImage:
    """Build a LoadedImage from decoded samples: HxW, HxWx1 (grey), HxWx2 (grey + alpha),
    HxWx3 (RGB) or HxWx4 (RGBA).

    Alpha is composited on black, so transparent padding around an X-ray reads as air.
    Colour whose channels are identical becomes grey (many CXR JPEGs are stored as RGB).
    8-bit grey keeps no ``raw``; deeper grey gets ``raw`` and a :func:`default_window`.
    """
    if arr.ndim == 3 and arr.shape[2] in (1, 2) and arr.dtype != np.uint8:
        arr = arr[:, :, 0]  # high-bit-depth grey (+ alpha): keep the grey, alpha ignored
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8) * np.uint8(255)
        if arr.dtype == np.uint8:
            pixels = np.ascontiguousarray(255 - arr if invert else arr)
            return LoadedImage(None, pixels, None, None, None, fmt, None)
        raw = sanitize_raw(arr, name)
        window = default_window(raw)
        pixels = apply_window(raw, window, invert)
        return LoadedImage(None, pixels, raw, window, None, fmt, None, invert)
    if arr.ndim != 3 or arr.shape[2] not in (2, 3, 4):
        raise ImageLoadError(f"{name}: unsupported pixel layout {tuple(arr.shape)}")
    colour = colour_to_uint8(arr, name)
    if colour.shape[2] in (2, 4):
        colour = _composite_on_black(colour[:, :, :-1], colour[:, :, -1])
    if colour.ndim == 3 and colour.shape[2] == 1:
        colour = colour[:, :, 0]
    elif np.array_equal(colour[:, :, 0], colour[:, :, 1]) and np.array_equal(
        colour[:, :, 1], colour[:, :, 2]
    ):
        colour = colour[:, :, 0]
    if invert:
        colour = 255 - colour
    return LoadedImage(None, np.ascontiguousarray(colour), None, None, None, fmt, None)


def colour_to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """Colour samples to uint8: integers scaled by their type's range, floats windowed."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(arr.dtype, np.integer):
        top = float(np.iinfo(arr.dtype).max)
        scaled = np.clip(arr.astype(np.float32), 0.0, top) * np.float32(255.0 / top)
        return np.rint(scaled).astype(np.uint8)
    raw = sanitize_raw(arr, name)
    if raw.min() >= 0.0 and raw.max() <= 1.0:
        return np.rint(raw * np.float32(255.0)).astype(np.uint8)
    return apply_window(raw, default_window(raw))


def _composite_on_black(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """colour * alpha / 255 with rounding; a no-op copy-free path for fully opaque images."""
    if alpha.min() == 255:
        return colour
    weights = alpha.astype(np.uint16)[:, :, None]
    return ((colour.astype(np.uint16) * weights + 127) // 255).astype(np.uint8)
