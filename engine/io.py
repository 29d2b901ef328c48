"""Image input: PNG, JPEG, TIFF and DICOM chest X-rays into one :class:`LoadedImage`.

Everything downstream (predictor, trainer, GUI) sees the same thing: ``pixels``, a uint8
HxW (grey) or HxWx3 (colour) array that is both what is shown and what the model gets.
High-bit-depth data (DICOM, 16-bit/float TIFF and PNG) also keeps ``raw`` (float32) and the
``window`` that made ``pixels``, so the GUI can re-window without reading the file again;
``apply_window(raw, window, invert)`` reproduces ``pixels`` exactly.

The format is found from the file's first bytes, not its name, so a JPEG saved as ``.png``
still opens. Every failure is an :class:`ImageLoadError` whose message starts with the file
name and says in plain words what is wrong; library exceptions are chained, never leaked.
Sizes are checked from the header before any pixel is decoded (decompression bombs).

Pixel coordinates everywhere are (row, col) of ``pixels``: after EXIF orientation for JPEG,
which is how viewers and OpenCV show such files.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps

from engine.errors import ImageLoadError

__all__ = [
    "MAX_PIXELS",
    "SUPPORTED_EXTENSIONS",
    "LoadedImage",
    "Window",
    "apply_window",
    "default_window",
    "is_supported_image",
    "load_image",
    "load_image_bytes",
]

MAX_PIXELS = 100_000_000
"""Largest image (rows x columns) we agree to decode; bigger headers are refused unread."""

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom", ".bmp", ".webp"}
)
DICOM_EXTENSIONS: frozenset[str] = frozenset({".dcm", ".dicom"})

# A half-decoded image must fail loudly, never be shown with a grey band at the bottom.
ImageFile.LOAD_TRUNCATED_IMAGES = False



_SNIFF_BYTES = 132  # DICOM: 128-byte preamble + "DICM"
_PILLOW_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"BM", "BMP"),
)
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_UNKNOWN_FORMAT = "unknown image format (expected PNG, JPEG, TIFF or DICOM)"


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
    for MONOCHROME1 (and TIFF min-is-white) data, whose low values are white.
    """

    path: Path | None
    pixels: np.ndarray
    raw: np.ndarray | None
    window: Window | None
    pixel_spacing: tuple[float, float] | None
    format: str
    dicom_meta: dict[str, str] | None
    invert: bool = False

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
    np.nan_to_num(out, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(out, 0.0, 255.0, out=out)
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


# ----------------------------------------------------------------------------- public loaders


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Decode the image file at ``path`` (PNG, JPEG, TIFF, DICOM; BMP/WEBP via Pillow)."""
    path = Path(path)
    name = path.name or str(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
            fh.seek(0)
            image = _decode(fh, head, name, max_pixels)
    except FileNotFoundError as exc:
        raise ImageLoadError(f"{name}: the file does not exist") from exc
    except IsADirectoryError as exc:
        raise ImageLoadError(f"{name}: this is a folder, not an image file") from exc
    except PermissionError as exc:
        raise ImageLoadError(f"{name}: no permission to read the file") from exc
    except OSError as exc:
        raise ImageLoadError(f"{name}: the file could not be read ({exc.strerror or exc})") from exc
    return dataclasses.replace(image, path=path)


def load_image_bytes(
    data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS
) -> LoadedImage:
    """Same as :func:`load_image` for an in-memory file; ``name`` is used in messages and,
    for preamble-less DICOM, its extension."""
    data = bytes(data)
    return _decode(io.BytesIO(data), data[:_SNIFF_BYTES], name, max_pixels)


def is_supported_image(path: str | Path) -> bool:
    """Cheap test whether a folder entry is worth listing as an image.

    Decided by extension alone (no file access) except for names without a real extension
    (``IM0001``, ``1.2.840.113619.2.5``), where the 132-byte DICOM preamble is read. macOS
    ``._*`` sidecar files and DICOMDIR indexes are skipped.
    """
    path = Path(path)
    if path.name.startswith("._") or path.name.upper() == "DICOMDIR":
        return False
    suffix = path.suffix.lower()
    if suffix in SUPPORTED_EXTENSIONS:
        return True
    if suffix and not suffix[1:].isdigit():
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError:
        return False
    return head[128:132] == b"DICM"


# ----------------------------------------------------------------------------- helpers


def sniff_format(head: bytes) -> str | None:
    """Format name from the first 132 bytes, or None when no known signature matches."""
    if head[128:132] == b"DICM":
        return "DICOM"
    if head[:4] in _TIFF_MAGIC:
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for magic, fmt in _PILLOW_MAGIC:
        if head.startswith(magic):
            return fmt
    return None


@contextmanager
def library_errors(name: str, reason: str) -> Iterator[None]:
    """Turn any library exception into an ImageLoadError "<name>: <reason>" (chained)."""
    try:
        yield
    except ImageLoadError:
        raise
    except MemoryError as exc:
        raise ImageLoadError(f"{name}: not enough memory to decode the image") from exc
    except Exception as exc:  # noqa: BLE001 - decoders raise anything on corrupt input
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


def _decode(fh: BinaryIO, head: bytes, name: str, max_pixels: int) -> LoadedImage:
    """Dispatch on content; DICOM without preamble only when the name says .dcm/.dicom."""
    if not head:
        raise ImageLoadError(f"{name}: the file is empty (0 bytes)")
    fmt = sniff_format(head)
    if fmt == "DICOM" or (fmt is None and Path(name).suffix.lower() in DICOM_EXTENSIONS):
        from engine.dicom_io import load_dicom  # pydicom is only imported when needed

        return load_dicom(fh, name, max_pixels, force=fmt is None)
    if fmt is None:
        raise ImageLoadError(f"{name}: {_UNKNOWN_FORMAT}")
    if fmt == "TIFF":
        from engine.tiff_io import load_tiff  # tifffile is only imported when needed

        return load_tiff(fh, name, max_pixels)
    return load_pillow(fh, name, fmt, max_pixels)


def load_pillow(
    fh: BinaryIO, name: str, fmt: str, max_pixels: int, single_frame: bool = True
) -> LoadedImage:
    """PNG/JPEG/BMP/WEBP (and TIFF that tifffile cannot decompress) through Pillow."""
    try:
        image = Image.open(fh, formats=[fmt])
    except Image.DecompressionBombError as exc:
        limit = max_pixels
        if Image.MAX_IMAGE_PIXELS:
            limit = min(limit, 2 * Image.MAX_IMAGE_PIXELS)
        raise ImageLoadError(
            f"{name}: the image is too large (more than {limit:,} pixels)"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad headers
        raise ImageLoadError(f"{name}: the file is truncated or corrupt") from exc
    with image:
        cols, rows = image.size
        check_size(name, rows, cols, max_pixels)
        frames = int(getattr(image, "n_frames", 1) or 1)
        if single_frame and frames > 1:
            raise ImageLoadError(
                f"{name}: animated or multi-frame image ({frames} frames) is not supported; "
                "export a single frame"
            )
        with library_errors(name, "the file is truncated or corrupt"):
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            arr = _pillow_samples(image)
    return image_from_array(arr, fmt, name)


def _pillow_samples(image: Image.Image) -> np.ndarray:
    """Samples of a Pillow image as numpy, keeping alpha and 16-bit/float precision."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA", "F") or mode.startswith("I"):
        return np.asarray(image)
    if mode == "1":
        return np.asarray(image.convert("L"))
    if mode in ("La", "RGBa"):  # premultiplied: already composited on black
        return np.asarray(image.convert(mode[:-1]))[:, :, :-1]
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
    return np.asarray(image.convert("RGB"))  # CMYK, YCbCr, LAB, HSV
