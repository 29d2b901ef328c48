"""TIFF input through tifffile, with Pillow as the fallback decoder.

Kept apart from the dispatcher (:mod:`engine.imaging.loader`) so tifffile is imported only
when a TIFF arrives, and so its defences (page-chain loops, multi-page and 3-D files,
compressions that need the optional ``imagecodecs``) live in one place.
"""

from __future__ import annotations

import itertools
import logging
from typing import BinaryIO

import numpy as np

from engine.errors import ImageLoadError
from engine.imaging.image import LoadedImage, check_size, image_from_array, library_errors
from engine.imaging.pillow_io import load_pillow

MAX_TIFF_PAGES = 64  # a radiograph plus thumbnails or pyramid levels; enough to refuse more


class _OutcomeOnly(logging.Filter):
    """tifffile logs each damaged tag it skips ("ERROR: <TiffTag.fromfile> raised ...");
    the loader reports the outcome itself (an image or one ImageLoadError), so those lines
    would only add cryptic noise to the CLI's one-line error and the GUI's console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.CRITICAL


logging.getLogger("tifffile").addFilter(_OutcomeOnly())


def full_pages(tif, name: str) -> list:
    """The full-resolution pages, walking at most ``MAX_TIFF_PAGES`` pages of the chain.

    tifffile follows each page's "next page" offset; a damaged file whose offsets point back
    to an earlier page would otherwise be walked forever (hang, growing memory).
    """
    pages, offsets = [], set()
    for page in itertools.islice(tif.pages, MAX_TIFF_PAGES):
        if page.offset in offsets:
            raise ImageLoadError(f"{name}: the TIFF file is corrupt (its list of pages loops)")
        offsets.add(page.offset)
        if not page.is_reduced:
            pages.append(page)
    return pages


def load_tiff(fh: BinaryIO, name: str, max_pixels: int) -> LoadedImage:
    """TIFF through tifffile (8/16/32-bit, float, grey/RGB/RGBA, palette, min-is-white).

    Reduced-resolution pages (thumbnails, pyramids) are ignored; several full pages are
    refused rather than silently picking one. Compressions that need the optional
    ``imagecodecs`` package (LZW, JPEG) are decoded by Pillow instead.
    """
    import tifffile

    with library_errors(name, "the TIFF file is truncated or corrupt"):
        tif = tifffile.TiffFile(fh)
    with tif, library_errors(name, "the TIFF file is truncated or corrupt"):
        pages = full_pages(tif, name)
        if not pages:
            raise ImageLoadError(f"{name}: the TIFF file contains no image")
        if len(pages) > 1:
            raise ImageLoadError(
                f"{name}: multi-page TIFF ({len(pages)} pages) is not supported; save a single page"
            )
        page = pages[0]
        if not page.dataoffsets or not any(page.databytecounts):
            raise ImageLoadError(f"{name}: the TIFF file is truncated or corrupt")
        if page.imagedepth > 1:
            raise ImageLoadError(f"{name}: 3-D TIFF volumes are not supported")
        check_size(name, page.imagelength, page.imagewidth, max_pixels)
        photometric = int(page.photometric)
        if photometric not in (0, 1, 2, 3):  # min-is-white, min-is-black, RGB, palette
            if int(page.compression) == 1:
                raise ImageLoadError(
                    f"{name}: TIFF colour type {page.photometric.name} is not supported"
                )
            fh.seek(0)  # compressed YCbCr (JPEG-in-TIFF) and the like: Pillow converts
            return load_pillow(fh, name, "TIFF", max_pixels, single_frame=False)
        try:
            arr = page.asarray()
        except ValueError as exc:
            if "imagecodecs" not in str(exc):
                raise
            fh.seek(0)
            try:
                return load_pillow(fh, name, "TIFF", max_pixels, single_frame=False)
            except ImageLoadError as pil_exc:
                raise ImageLoadError(
                    f"{name}: this TIFF is compressed with {page.compression.name}; "
                    "install the 'imagecodecs' package to read it"
                ) from pil_exc
        if page.axes.startswith("S"):
            arr = np.moveaxis(arr, 0, -1)
        if photometric == 3 and page.colormap is not None:
            arr = np.moveaxis(np.asarray(page.colormap)[:, arr], 0, -1)
    return image_from_array(arr, "TIFF", name, invert=photometric == 0)
