"""DICOM input (dispatched by :mod:`engine.imaging.loader`): one frame of a radiograph,
displayed as a viewer would.

Grey data goes stored values -> modality LUT (rescale slope/intercept) -> VOI (VOI LUT
Sequence, else Window Center/Width, else a percentile window) -> MONOCHROME1 inversion, so
air is dark whatever the vendor wrote. The values before the VOI step stay in ``raw`` for
re-windowing. Colour data (RGB, YBR, palette) becomes RGB uint8 without ``raw``.

Identifiers needed to reference the source in a DICOM-SEG are kept in ``dicom_meta``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGExtended12Bit,
)

from engine.errors import ImageLoadError
from engine.imaging.gdcm_io import decode_with_gdcm, gdcm_available, keep_gdcm_out_of_process
from engine.imaging.image import (
    LoadedImage,
    Window,
    apply_window,
    check_size,
    default_window,
    image_from_array,
    library_errors,
    sanitize_raw,
)
from engine.spacing import AT_DETECTOR, CALIBRATED, CORRECTED, PixelSpacing

keep_gdcm_out_of_process()

META_KEYWORDS: tuple[str, ...] = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "FrameOfReferenceUID",
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "SeriesDescription",
    "SeriesNumber",
    "InstanceNumber",
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "BodyPartExamined",
    "ViewPosition",
    "Laterality",
    "ImageLaterality",
    "PatientOrientation",
    "PhotometricInterpretation",
    "SpecificCharacterSet",
)
"""Attributes copied into ``LoadedImage.dicom_meta`` (as strings) when present."""


class _NoTracebacks(logging.Filter):
    """pydicom logs every failed decoding plugin with its traceback (LOGGER.exception) before
    raising; the loader turns the failure into one ImageLoadError, so the tracebacks would
    only reach the user's terminal as noise (the CLI configures logging to stderr)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None and record.levelno < logging.ERROR


for _logger in ("pydicom", "pydicom.pixels.decoders.base"):  # filters do not inherit
    logging.getLogger(_logger).addFilter(_NoTracebacks())

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_JPEG_PACKAGES = "pylibjpeg and pylibjpeg-libjpeg"
_J2K_PACKAGES = "pylibjpeg and pylibjpeg-openjpeg"
_DECODER_PACKAGES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": _JPEG_PACKAGES,  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": _JPEG_PACKAGES,  # JPEG Extended
    "1.2.840.10008.1.2.4.57": _JPEG_PACKAGES,  # JPEG Lossless
    "1.2.840.10008.1.2.4.70": _JPEG_PACKAGES,  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": _JPEG_PACKAGES,  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": _JPEG_PACKAGES,  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90": _J2K_PACKAGES,  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": _J2K_PACKAGES,  # JPEG 2000
    "1.2.840.10008.1.2.4.201": _J2K_PACKAGES,  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": _J2K_PACKAGES,  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": _J2K_PACKAGES,  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg and pylibjpeg-rle",  # RLE Lossless
}


def load_dicom(fh: BinaryIO, name: str, max_pixels: int, force: bool = False) -> LoadedImage:
    """Decode a single-frame DICOM image; ``force`` reads files without the DICM preamble."""
    with library_errors(name, "not a valid DICOM file, or the file is corrupt"):
        ds = pydicom.dcmread(fh, force=force)
    with library_errors(name, "the DICOM file is corrupt"):
        _check_header(ds, name, max_pixels, force)
        transfer_syntax = _transfer_syntax(ds)
        _check_decoder(transfer_syntax, name)
        stored = _decode(ds, fh, transfer_syntax, name)
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
        spacing = _pixel_spacing(ds)
        meta = _meta(ds, transfer_syntax)
        if stored.ndim == 3 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
            image = image_from_array(_colour(ds, stored, photometric, name), "DICOM", name)
            return dataclasses.replace(image, spacing=spacing, dicom_meta=meta)
        modality = _modality_values(ds, stored, name)
        raw, window = _voi(ds, modality)
        invert = photometric == "MONOCHROME1"
        pixels = apply_window(raw, window, invert)
    return LoadedImage(None, pixels, raw, window, spacing, "DICOM", meta, invert)


def read_dicom_spacing(fh: BinaryIO, force: bool = False) -> PixelSpacing | None:
    """:func:`_pixel_spacing` of a file read up to its pixel data; None when unreadable."""
    try:
        ds = pydicom.dcmread(fh, stop_before_pixels=True, force=force)
    except Exception:  # any damage: the caller falls back to pixel units
        return None
    return _pixel_spacing(ds)


def _decode(ds: Dataset, fh: BinaryIO, transfer_syntax: UID, name: str) -> np.ndarray:
    """pydicom's decoders, then GDCM for the one syntax they cannot do (12-bit JPEG Extended,
    grey). Only there: on other syntaxes a refusal by pylibjpeg means damage, and GDCM on damaged
    data can abort or grind for seconds (see :mod:`engine.imaging.gdcm_io`)."""
    try:
        with library_errors(name, "the DICOM pixel data is truncated or corrupt"):
            return ds.pixel_array
    except ImageLoadError:
        if transfer_syntax != JPEGExtended12Bit or int(ds.get("SamplesPerPixel") or 1) != 1:
            raise
        if not gdcm_available():
            raise
        fh.seek(0)
        stored = decode_with_gdcm(fh.read(), int(ds.Rows), int(ds.Columns))
        if stored is None:
            raise
        return stored


def _check_header(ds: Dataset, name: str, max_pixels: int, forced: bool) -> None:
    """Everything we can refuse before decoding: no pixels, several frames, bad size."""
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        if forced and "SOPClassUID" not in ds and "Rows" not in ds:
            raise ImageLoadError(f"{name}: not a valid DICOM file, or the file is corrupt")
        raise ImageLoadError(
            f"{name}: the DICOM file has no pixel data (it may be a report or an index file)"
        )
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise ImageLoadError(
            f"{name}: multi-frame DICOM ({frames} frames) is not supported; export a single frame"
        )
    if "Rows" not in ds or "Columns" not in ds:
        raise ImageLoadError(f"{name}: the DICOM file does not state the image size (Rows/Columns)")
    check_size(name, int(ds.Rows), int(ds.Columns), max_pixels)


def _transfer_syntax(ds: Dataset) -> UID:
    """The file's transfer syntax; for files without a meta header, the encoding pydicom read."""
    transfer_syntax = ds.file_meta.get("TransferSyntaxUID")
    if transfer_syntax is None:
        implicit, little = ds.original_encoding
        if implicit:
            transfer_syntax = ImplicitVRLittleEndian
        else:
            transfer_syntax = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    return UID(transfer_syntax)


def _check_decoder(transfer_syntax: UID, name: str) -> None:
    """Say which package to install instead of pydicom's generic 'no plugin' error."""
    try:
        decoder = get_decoder(transfer_syntax)
    except NotImplementedError as exc:
        label = transfer_syntax.name if transfer_syntax.is_valid else str(transfer_syntax)
        raise ImageLoadError(
            f"{name}: the DICOM pixel encoding '{label}' is not supported"
        ) from exc
    if decoder.is_available:
        return
    packages = _DECODER_PACKAGES.get(str(transfer_syntax))
    if packages is None:
        packages = " or ".join(decoder.missing_dependencies) or "a pydicom decoding plugin"
    raise ImageLoadError(
        f"{name}: the image is compressed as {transfer_syntax.name} and no decoder for it "
        f"is installed; install {packages}"
    )


def _colour(ds: Dataset, stored: np.ndarray, photometric: str, name: str) -> np.ndarray:
    """RGB samples of a colour image (pydicom already converts YBR to RGB while decoding)."""
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(stored, ds)
        top = 65535 if rgb.max() > 255 else 255
    elif stored.ndim == 3 and stored.shape[2] == 3:
        rgb = stored
        top = 2 ** int(ds.get("BitsStored") or 8) - 1
    else:
        raise ImageLoadError(
            f"{name}: DICOM photometric interpretation '{photometric}' is not supported"
        )
    if rgb.dtype == np.uint8 and top == 255:
        return rgb
    scaled = np.clip(rgb.astype(np.float32), 0, top) * np.float32(255.0 / top)
    return np.rint(scaled).astype(np.uint8)


EXACT_FLOAT32 = 1 << 24
"""Integers below this magnitude are exact in float32."""


def _modality_values(ds: Dataset, stored: np.ndarray, name: str) -> np.ndarray:
    """float32 modality values (rescale slope / intercept or Modality LUT) of ``stored``.

    The common case, integer samples with an integer slope and intercept (CR/DX/DR exports),
    is computed in float32 directly: every value is an integer below 2**24, so the result is
    exactly pydicom's float64 one cast to float32, at a fraction of the cost (a 2048 x 2048
    image: ~4 ms instead of ~25 ms, a third of decoding a folder of them). Anything else goes
    through pydicom and :func:`sanitize_raw`.
    """
    if stored.dtype.kind in "ui" and "ModalityLUTSequence" not in ds:
        has_rescale = "RescaleSlope" in ds and "RescaleIntercept" in ds
        slope = _first_float(ds.get("RescaleSlope")) if has_rescale else 1.0
        intercept = _first_float(ds.get("RescaleIntercept")) if has_rescale else 0.0
        if slope is not None and intercept is not None and slope.is_integer() and intercept.is_integer():
            low, high = (int(v) for v in (stored.min(), stored.max()))
            if max(abs(low), abs(high)) * abs(slope) + abs(intercept) < EXACT_FLOAT32:
                values = stored.astype(np.float32)
                if slope != 1.0:
                    values *= np.float32(slope)
                if intercept != 0.0:
                    values += np.float32(intercept)
                return values
    return sanitize_raw(apply_modality_lut(stored, ds), name)


def _voi(ds: Dataset, modality: np.ndarray) -> tuple[np.ndarray, Window]:
    """Raw values and the linear window that together give the displayed pixels.

    A VOI LUT is not linear, so its output becomes ``raw`` and the window spans the LUT's
    output range; Window Center/Width (first pair when several) is used as is; 8-bit data
    (secondary captures of already windowed images) is shown unchanged, like the same image
    as a PNG; otherwise a percentile window. VOI LUT Function SIGMOID is treated as LINEAR.
    """
    sequence = ds.get("VOILUTSequence")
    if sequence:
        item = sequence[0]
        entries, first = int(item.LUTDescriptor[0]) or 65536, int(item.LUTDescriptor[1])
        table = apply_voi_lut(np.arange(first, first + entries, dtype=np.int64), ds)
        low, high = float(table.min()), float(table.max())
        indices = np.rint(modality).astype(np.int64)  # the LUT is indexed by integers
        out = apply_voi_lut(indices, ds).astype(np.float32)
        return out, Window(center=(low + high) / 2.0, width=max(high - low, 1.0))
    center, width = _first_float(ds.get("WindowCenter")), _first_float(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 0:
        return modality, Window(center=center, width=width)
    if int(ds.get("BitsStored") or 0) == 8 and modality.min() >= 0 and modality.max() <= 255:
        return modality, Window(center=127.5, width=255.0)  # 8-bit data is display-ready
    return modality, default_window(modality)


def _first_float(value: Any) -> float | None:
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _pixel_spacing(ds: Dataset) -> PixelSpacing | None:
    """The pixel size in the patient plane as well as the file lets us know it, and how.

    - ``calibrated``: PixelSpacing (0028,0030), taken as the modality's statement of the
      spacing at the anatomy. For projection radiographs (DX, CR, MG) the standard lets
      PixelSpacing either be calibrated (geometry or a fiducial) or, when it was not, repeat
      ImagerPixelSpacing (PS3.3 10.7.1.1). So when PixelSpacing equals ImagerPixelSpacing and
      no PixelSpacingCalibrationType (0028,0A02) says it was calibrated, it is the detector
      spacing in disguise and is handled as below (corrected when a factor is given). A
      PixelSpacing that differs from ImagerPixelSpacing is already at the anatomy and is never
      divided again. Legacy CR files that put the plate spacing in PixelSpacing alone cannot
      be told apart (PS3.3 10.7.1.1: "it cannot be determined") and are taken at their word.
    - ``corrected``: ImagerPixelSpacing (0018,1164) / EstimatedRadiographicMagnificationFactor
      (0018,1114), the detector spacing projected back to the patient with the modality's
      own estimate; a factor that is missing, not a number, infinite or <= 0 is ignored.
    - ``at detector``: ImagerPixelSpacing alone (areas overstate the anatomy by the square of
      the unknown magnification: about 1.1 for a PA chest, up to 1.3 at the bedside).

    Unreadable values (not two positive finite numbers) count as absent, never as an error:
    a bad spacing must not stop the image from opening.
    """
    with warnings.catch_warnings():  # pydicom warns (and keeps the text) for malformed DS
        warnings.simplefilter("ignore")
        calibrated = _spacing_pair(ds, "PixelSpacing")
        detector = _spacing_pair(ds, "ImagerPixelSpacing")
        factor = _magnification(ds)
        calibration_stated = "PixelSpacingCalibrationType" in ds
    if calibrated is not None:
        same = detector is not None and all(
            math.isclose(a, b, rel_tol=1e-6) for a, b in zip(calibrated, detector, strict=True)
        )
        if not same or calibration_stated:
            return PixelSpacing(*calibrated, CALIBRATED)
    if detector is None:
        return None
    if factor is not None:
        return PixelSpacing(detector[0] / factor, detector[1] / factor, CORRECTED, factor)
    return PixelSpacing(*detector, AT_DETECTOR)


def _spacing_pair(ds: Dataset, keyword: str) -> tuple[float, float] | None:
    """(row mm, col mm) of a two-valued spacing attribute, or None when absent or malformed."""
    try:
        row, col = (float(v) for v in ds.get(keyword))
    except (TypeError, ValueError):
        return None
    if row > 0 and col > 0 and math.isfinite(row) and math.isfinite(col):
        return (row, col)
    return None


def _magnification(ds: Dataset) -> float | None:
    """EstimatedRadiographicMagnificationFactor when it is a finite number > 0, else None."""
    try:
        factor = _first_float(ds.get("EstimatedRadiographicMagnificationFactor"))
    except (TypeError, ValueError):
        return None
    return factor if factor is not None and factor > 0 else None


def _meta(ds: Dataset, transfer_syntax: UID) -> dict[str, str]:
    meta = {"TransferSyntaxUID": str(transfer_syntax)}
    for keyword in META_KEYWORDS:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        if isinstance(value, MultiValue | list | tuple):
            meta[keyword] = "\\".join(str(v) for v in value)
        else:
            meta[keyword] = str(value)
    return meta
