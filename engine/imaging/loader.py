"""Image input: PNG, JPEG, TIFF and DICOM chest X-rays into one :class:`LoadedImage`.

This module is the dispatcher: it reads the first bytes and hands the file to one format
loader (:mod:`engine.imaging.pillow_io`, :mod:`engine.imaging.tiff_io`,
:mod:`engine.imaging.dicom_io`); the types and helpers they share live in
:mod:`engine.imaging.image`. Loaders never import the dispatcher.

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
from pathlib import Path
from typing import BinaryIO

from engine.errors import ImageLoadError
from engine.imaging.image import MAX_PIXELS, LoadedImage
from engine.imaging.pillow_io import load_pillow
from engine.spacing import PixelSpacing

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "is_supported_image",
    "load_image",
    "load_image_bytes",
    "read_pixel_spacing",
    "sniff_format",
]

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom", ".bmp", ".webp"}
)
DICOM_EXTENSIONS: frozenset[str] = frozenset({".dcm", ".dicom"})

_SNIFF_BYTES = 132  # DICOM: 128-byte preamble + "DICM"
_PILLOW_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"BM", "BMP"),
)
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_UNKNOWN_FORMAT = "unknown image format (expected PNG, JPEG, TIFF or DICOM)"


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


def read_pixel_spacing(path: str | Path) -> PixelSpacing | None:
    """The pixel spacing of an image file from its header alone (no pixel is decoded), for
    work that needs the spacing of many images at once (the measurements of an export).

    Only DICOM states a spacing we trust. TIFF resolution tags are not read: most writers
    put a screen default there (72 dpi), which would pass for a plausible but false 0.35 mm
    pixel. None for other formats, for files without a spacing and for files that cannot be
    read (the caller then reports areas in pixels).
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
            fmt = sniff_format(head)
            forced = fmt is None and path.suffix.lower() in DICOM_EXTENSIONS
            if fmt != "DICOM" and not forced:
                return None
            fh.seek(0)
            from engine.imaging.dicom_io import read_dicom_spacing

            return read_dicom_spacing(fh, force=forced)
    except OSError:
        return None


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


# ----------------------------------------------------------------------------- dispatch


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


def _decode(fh: BinaryIO, head: bytes, name: str, max_pixels: int) -> LoadedImage:
    """Dispatch on content; DICOM without preamble only when the name says .dcm/.dicom."""
    if not head:
        raise ImageLoadError(f"{name}: the file is empty (0 bytes)")
    fmt = sniff_format(head)
    if fmt == "DICOM" or (fmt is None and Path(name).suffix.lower() in DICOM_EXTENSIONS):
        from engine.imaging.dicom_io import load_dicom  # pydicom is only imported when needed

        return load_dicom(fh, name, max_pixels, force=fmt is None)
    if fmt is None:
        raise ImageLoadError(f"{name}: {_UNKNOWN_FORMAT}")
    if fmt == "TIFF":
        from engine.imaging.tiff_io import load_tiff  # tifffile is only imported when needed

        return load_tiff(fh, name, max_pixels)
    return load_pillow(fh, name, fmt, max_pixels)
