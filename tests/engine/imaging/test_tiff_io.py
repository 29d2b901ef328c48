"""engine.imaging.tiff_io (through the loader): every input is built here."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from engine.imaging import (
    Window,
    apply_window,
    load_image,
    load_image_bytes,
)
from tests.engine.imaging.image_files import refused, tiff_bytes, write

RNG = np.random.default_rng(1234)


# ----------------------------------------------------------------------------- TIFF


def test_8bit_tiff_loads_unchanged() -> None:
    grey = RNG.integers(0, 256, (12, 14), dtype=np.uint8)
    image = load_image_bytes(tiff_bytes(grey), "g.tif")
    assert image.format == "TIFF" and image.raw is None and np.array_equal(image.pixels, grey)


def test_16bit_tiff_keeps_raw_and_windows(tmp_path: Path) -> None:
    data = np.zeros((40, 50), np.uint16)
    data[:, 25:] = 60000
    data[10:30, 5:20] = 30000
    image = load_image(write(tmp_path, "deep.tiff", tiff_bytes(data)))
    assert np.array_equal(image.raw, data.astype(np.float32))
    assert image.window == Window(center=30000.0, width=60000.0)
    assert image.pixels[0, 0] == 0 and image.pixels[0, 49] == 255 and image.pixels[15, 10] == 128
    relit = apply_window(image.raw, Window(center=30000.0, width=2.0))
    assert relit[15, 10] == 128 and relit[0, 49] == 255


def test_float_tiff_non_finite_values_become_lowest_value() -> None:
    data = np.linspace(-1.0, 3.0, 100, dtype=np.float32).reshape(10, 10)
    data[0, 0], data[0, 1], data[0, 2] = np.nan, np.inf, -np.inf
    image = load_image_bytes(tiff_bytes(data), "f.tif")
    assert np.isfinite(image.raw).all()
    assert image.raw[0, 0] == image.raw[0, 1] == image.raw[0, 2] == data[0, 3]
    assert image.pixels[0, 0] == 0 and image.pixels[9, 9] == 255


def test_all_nan_tiff_refused() -> None:
    data = np.full((4, 4), np.nan, np.float32)
    assert "no valid pixel values" in refused(tiff_bytes(data), "nan.tif")


def test_rgb_and_rgba_tiff() -> None:
    rgb = RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    assert np.array_equal(load_image_bytes(tiff_bytes(rgb, photometric="rgb"), "c.tif").pixels, rgb)
    rgba = np.dstack([rgb, np.zeros((6, 7), np.uint8)])
    image = load_image_bytes(
        tiff_bytes(rgba, photometric="rgb", extrasamples=["unassalpha"]), "a.tif"
    )
    assert image.pixels.shape == (6, 7) and np.all(image.pixels == 0)  # fully transparent


def test_16bit_planar_rgb_tiff_scaled_to_8bit() -> None:
    planes = np.zeros((3, 4, 5), np.uint16)
    planes[0], planes[1], planes[2] = 65535, 257 * 100, 0
    image = load_image_bytes(
        tiff_bytes(planes, photometric="rgb", planarconfig="separate"), "p.tif"
    )
    assert image.pixels.shape == (4, 5, 3) and np.array_equal(image.pixels[2, 3], [255, 100, 0])


def test_miniswhite_tiff_is_inverted() -> None:
    grey = np.array([[0, 255], [10, 200]], np.uint8)
    image = load_image_bytes(tiff_bytes(grey, photometric="miniswhite"), "w.tif")
    assert np.array_equal(image.pixels, 255 - grey)
    deep = np.array([[0, 1000], [500, 250]], np.uint16)
    image = load_image_bytes(tiff_bytes(deep, photometric="miniswhite"), "w16.tif")
    assert image.invert and image.pixels[0, 0] == 255 and image.pixels[0, 1] == 0
    assert np.array_equal(image.pixels, apply_window(image.raw, image.window, invert=True))


def test_palette_tiff_becomes_rgb() -> None:
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, 1] = (65535, 0, 0)
    image = load_image_bytes(
        tiff_bytes(np.array([[0, 1], [1, 1]], np.uint8), photometric="palette", colormap=colormap),
        "pal.tif",
    )
    assert np.array_equal(image.pixels[0, 1], [255, 0, 0]) and np.array_equal(
        image.pixels[0, 0], [0, 0, 0]
    )


def test_multipage_tiff_refused() -> None:
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as writer:
        for _ in range(3):
            writer.write(np.zeros((8, 8), np.uint8))
    message = refused(buf.getvalue(), "stack.tif")
    assert message == "stack.tif: multi-page TIFF (3 pages) is not supported; save a single page"


def test_tiff_reduced_resolution_pages_are_ignored() -> None:
    buf = io.BytesIO()
    full = RNG.integers(0, 256, (32, 32), dtype=np.uint8)
    with tifffile.TiffWriter(buf) as writer:
        writer.write(full)
        writer.write(full[::4, ::4], subfiletype=1)
    image = load_image_bytes(buf.getvalue(), "pyramid.tif")
    assert np.array_equal(image.pixels, full)


def test_lzw_tiff_loads() -> None:
    """LZW needs imagecodecs in tifffile; without it the loader falls back to Pillow."""
    deep = (RNG.random((16, 16)) * 4095).astype(np.uint16)
    for arr in (RNG.integers(0, 256, (16, 16), dtype=np.uint8), deep):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="TIFF", compression="tiff_lzw")
        image = load_image_bytes(buf.getvalue(), "lzw.tif")
        expected = arr if arr.dtype == np.uint8 else apply_window(image.raw, image.window)
        assert image.format == "TIFF" and np.array_equal(image.pixels, expected)
    assert np.array_equal(image.raw, deep.astype(np.float32))


def test_truncated_tiff_refused() -> None:
    data = tiff_bytes((RNG.random((32, 32)) * 4000).astype(np.uint16))
    assert refused(data[:-500], "cut.tif") == "cut.tif: the TIFF file is truncated or corrupt"


def test_tiff_size_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", explode)
    message = refused(tiff_bytes(np.zeros((64, 64), np.uint8)), "t.tif", max_pixels=1000)
    assert "too large (64 x 64 pixels" in message
