"""PNG, JPEG, BMP and WEBP input through Pillow (also the fallback for TIFF that tifffile
cannot decompress)."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps

from engine.errors import ImageLoadError
from engine.imaging.image import LoadedImage, check_size, image_from_array, library_errors

# A half-decoded image must fail loudly, never be shown with a grey band at the bottom.
ImageFile.LOAD_TRUNCATED_IMAGES = False


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
    except Exception as exc:
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
