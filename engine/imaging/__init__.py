"""Image input: PNG, JPEG, TIFF and DICOM files into one :class:`LoadedImage`.

:mod:`~engine.imaging.image` holds the types and helpers every format loader shares,
:mod:`~engine.imaging.loader` dispatches on a file's first bytes to
:mod:`~engine.imaging.pillow_io`, :mod:`~engine.imaging.tiff_io` or
:mod:`~engine.imaging.dicom_io`; a DICOM file's pixel spacing comes with its provenance
(:class:`~engine.spacing.PixelSpacing`, also read header-only by :func:`read_pixel_spacing`).
The TIFF and DICOM loaders are not imported here: tifffile and pydicom load only when such a
file arrives.
"""

from engine.imaging.image import MAX_PIXELS, LoadedImage, Window, apply_window, default_window
from engine.imaging.loader import (
    SUPPORTED_EXTENSIONS,
    is_supported_image,
    load_image,
    load_image_bytes,
    read_pixel_spacing,
)
from engine.spacing import PixelSpacing

__all__ = [
    "LoadedImage",
    "MAX_PIXELS",
    "PixelSpacing",
    "SUPPORTED_EXTENSIONS",
    "Window",
    "apply_window",
    "default_window",
    "is_supported_image",
    "load_image",
    "load_image_bytes",
    "read_pixel_spacing",
]
