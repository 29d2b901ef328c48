"""engine.imaging.image: windowing, which the loaders and the GUI's re-windowing share."""

from __future__ import annotations

import numpy as np
import pytest

from engine.imaging import (
    Window,
    apply_window,
    default_window,
    load_image_bytes,
)
from tests.engine.imaging.image_files import dicom_bytes, make_dicom, png_bytes, tiff_bytes

RNG = np.random.default_rng(1234)


# ----------------------------------------------------------------------------- windowing


def test_apply_window_maps_linearly_and_clips() -> None:
    raw = np.array([-5.0, 0.0, 50.0, 100.0, 150.0, np.nan], np.float32)
    out = apply_window(raw, Window(center=50.0, width=100.0))
    assert out.dtype == np.uint8 and out.tolist() == [0, 0, 128, 255, 255, 0]
    assert apply_window(raw, Window(50.0, 100.0), invert=True).tolist() == [
        255,
        255,
        127,
        0,
        0,
        255,
    ]
    assert apply_window(raw, Window(center=50.0, width=0.0)).tolist() == [0, 0, 0, 255, 255, 0]


@pytest.mark.parametrize("kind", ["mono1_window", "mono2_default", "rescaled", "tiff16", "png16"])
def test_apply_window_reproduces_pixels(kind: str) -> None:
    data = (RNG.random((40, 30)) * 3000).astype(np.uint16)
    if kind == "mono1_window":
        image = load_image_bytes(
            dicom_bytes(make_dicom(data, "MONOCHROME1", WindowCenter=1234.5, WindowWidth=777)),
            "a.dcm",
        )
    elif kind == "mono2_default":
        image = load_image_bytes(dicom_bytes(make_dicom(data)), "b.dcm")
    elif kind == "rescaled":
        ds = make_dicom(data, RescaleSlope=0.37, RescaleIntercept=-12.5)
        image = load_image_bytes(dicom_bytes(ds), "c.dcm")
    elif kind == "tiff16":
        image = load_image_bytes(tiff_bytes(data), "d.tif")
    else:
        image = load_image_bytes(png_bytes(data), "e.png")
    assert np.array_equal(apply_window(image.raw, image.window, invert=image.invert), image.pixels)


def test_default_window_is_robust_to_outliers() -> None:
    raw = np.full((100, 100), 1000.0, np.float32)
    raw[:50] = 3000.0
    raw[0, :5] = 1e9  # a burned-in marker must not stretch the window
    window = default_window(raw)
    assert window == Window(center=2000.0, width=2000.0)
    assert default_window(np.full((3, 3), 7.0)) == Window(center=7.0, width=1.0)


def test_apply_window_sends_infinities_to_the_ends_and_nan_to_black() -> None:
    raw = np.array([np.inf, -np.inf, np.nan, 50.0], np.float32)
    assert apply_window(raw, Window(center=50.0, width=100.0)).tolist() == [255, 0, 0, 128]
