"""engine.imaging.pillow_io (through the loader): PNG, JPEG, BMP, WEBP and the real dataset files."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from engine.errors import ImageLoadError
from engine.imaging import (
    Window,
    apply_window,
    default_window,
    is_supported_image,
    load_image,
    load_image_bytes,
)
from tests.conftest import require_data
from tests.engine.imaging.image_files import (
    COVIDQU_DIR,
    RGBA_PNG,
    huge_png,
    png_bytes,
    refused,
    write,
)

RNG = np.random.default_rng(1234)


# ----------------------------------------------------------------------------- PNG / JPEG


def test_grey_png_loads_unchanged(tmp_path: Path) -> None:
    grey = RNG.integers(0, 256, (30, 40), dtype=np.uint8)
    image = load_image(write(tmp_path, "chest.png", png_bytes(grey)))
    assert image.format == "PNG" and image.path == tmp_path / "chest.png"
    assert image.pixels.dtype == np.uint8 and np.array_equal(image.pixels, grey)
    assert (image.height, image.width) == (30, 40)
    assert image.raw is None and image.window is None and image.pixel_spacing is None
    assert image.dicom_meta is None and image.invert is False


def test_file_name_with_spaces_and_parentheses_loads(tmp_path: Path) -> None:
    grey = RNG.integers(0, 256, (8, 9), dtype=np.uint8)
    path = write(tmp_path, "Normal (1) copy [2].png", png_bytes(grey))
    assert is_supported_image(path)
    assert np.array_equal(load_image(str(path)).pixels, grey)


def test_rgba_png_loads_as_rgb_or_grey() -> None:
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:, :2, 3] = 0  # transparent padding -> black
    rgba[:, 2:4, 3] = 128  # half transparent -> half intensity
    rgba[:, 4:, 3] = 255
    image = load_image_bytes(png_bytes(rgba), "rgba.png")
    assert image.pixels.shape == (4, 6, 3)
    assert np.all(image.pixels[:, :2] == 0)
    assert np.array_equal(image.pixels[0, 2], [100, 50, 25])  # round(v * 128 / 255)
    assert np.array_equal(image.pixels[0, 5], [200, 100, 50])

    grey_rgba = np.dstack([np.full((4, 6), 90, np.uint8)] * 3 + [np.full((4, 6), 255, np.uint8)])
    grey = load_image_bytes(png_bytes(grey_rgba), "grey_rgba.png")
    assert grey.pixels.shape == (4, 6) and np.all(grey.pixels == 90)


def test_rgb_with_equal_channels_becomes_grey(tmp_path: Path) -> None:
    grey = RNG.integers(0, 256, (20, 24), dtype=np.uint8)
    rgb = np.dstack([grey] * 3)
    image = load_image(write(tmp_path, "rgb.png", png_bytes(rgb)))
    assert image.pixels.shape == (20, 24) and np.array_equal(image.pixels, grey)
    assert np.array_equal(image.rgb(), rgb)

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    jpeg = load_image_bytes(buf.getvalue(), "rgb.jpg")
    assert jpeg.format == "JPEG" and jpeg.pixels.ndim == 2


def test_rgb_with_colour_stays_rgb() -> None:
    rgb = RNG.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    image = load_image_bytes(png_bytes(rgb), "colour.png")
    assert image.pixels.shape == (10, 12, 3) and np.array_equal(image.pixels, rgb)
    assert image.rgb() is image.pixels


def test_la_png_is_composited_on_black() -> None:
    la = np.dstack([np.full((5, 5), 200, np.uint8), np.full((5, 5), 51, np.uint8)])
    image = load_image_bytes(png_bytes(la, mode="LA"), "la.png")
    assert image.pixels.shape == (5, 5) and np.all(image.pixels == 40)


def test_palette_png_becomes_rgb() -> None:
    indices = np.array([[0, 1], [1, 0], [0, 0]], np.uint8)
    pal = Image.fromarray(indices, mode="P")
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    image = load_image_bytes(buf.getvalue(), "pal.png")
    assert image.pixels.shape == (3, 2, 3)
    assert np.array_equal(image.pixels[0, 0], [255, 0, 0])
    assert np.array_equal(image.pixels[0, 1], [0, 0, 255])


def test_1bit_png_maps_to_black_and_white() -> None:
    bits = Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1")
    buf = io.BytesIO()
    bits.save(buf, format="PNG")
    image = load_image_bytes(buf.getvalue(), "bits.png")
    assert np.array_equal(image.pixels, [[0, 255], [255, 0]])


def test_16bit_png_keeps_raw_and_windows() -> None:
    data = (RNG.random((32, 32)) * 4000 + 100).astype(np.uint16)
    image = load_image_bytes(png_bytes(data), "deep.png")
    assert image.raw is not None and image.raw.dtype == np.float32
    assert np.array_equal(image.raw, data.astype(np.float32))
    assert image.window == default_window(image.raw)
    assert np.array_equal(image.pixels, apply_window(image.raw, image.window))
    assert image.pixels.min() == 0 and image.pixels.max() == 255


def test_constant_16bit_image_does_not_divide_by_zero() -> None:
    image = load_image_bytes(png_bytes(np.full((6, 7), 1234, np.uint16)), "flat.png")
    assert image.window == Window(center=1234.0, width=1.0)
    assert np.all(image.pixels == 128)


def test_jpeg_exif_orientation_is_applied() -> None:
    arr = np.zeros((20, 40), np.uint8)
    arr[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    image = load_image_bytes(buf.getvalue(), "phone.jpg")
    assert image.pixels.shape == (40, 20)
    assert image.pixels[2, 10] > 200 and image.pixels[37, 10] < 50  # white half now on top


@pytest.mark.parametrize("fmt", ["BMP", "WEBP"])
def test_bmp_and_webp_load_through_pillow(fmt: str) -> None:
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("this Pillow build has no WEBP support")
    grey = RNG.integers(0, 256, (10, 12), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    image = load_image_bytes(buf.getvalue(), "x." + fmt.lower())
    assert image.format == fmt and np.array_equal(image.pixels, grey)


def test_truncated_png_refused(tmp_path: Path) -> None:
    data = png_bytes(RNG.integers(0, 256, (64, 64), dtype=np.uint8))
    path = write(tmp_path, "x.png", data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=r"^x\.png: the file is truncated or corrupt$") as info:
        load_image(path)
    assert info.value.__cause__ is not None  # the library error is chained, not swallowed


def test_truncated_jpeg_refused() -> None:
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64), dtype=np.uint8)).save(buf, format="JPEG")
    assert "truncated or corrupt" in refused(buf.getvalue()[:600], "cut.jpg")


def test_content_decides_format_not_extension(tmp_path: Path) -> None:
    grey = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    image = load_image(write(tmp_path, "really_png.jpg", png_bytes(grey)))
    assert image.format == "PNG" and np.array_equal(image.pixels, grey)
    assert "unknown image format" in refused(write(tmp_path, "notes.png", b"hello, not an image"))


def test_unknown_format_refused(tmp_path: Path) -> None:
    message = refused(write(tmp_path, "z.bin", bytes(range(256)) * 4))
    assert message == "z.bin: unknown image format (expected PNG, JPEG, TIFF or DICOM)"


def test_empty_and_missing_files_refused(tmp_path: Path) -> None:
    assert "empty" in refused(write(tmp_path, "zero.png", b""))
    assert "does not exist" in refused(tmp_path / "gone.png")
    assert "folder" in refused(tmp_path)


def test_one_pixel_image_refused_as_empty() -> None:
    assert "image is empty" in refused(png_bytes(np.zeros((1, 1), np.uint8)), "dot.png")


def test_huge_image_refused_before_decoding() -> None:
    data = huge_png(20000, 20000)
    assert len(data) < 200_000
    start = time.perf_counter()
    message = refused(data, "bomb.png")
    assert "too large" in message
    assert time.perf_counter() - start < 1.0


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_size_limit_names_the_size() -> None:
    message = refused(huge_png(12000, 9000), "big.png")
    assert (
        message
        == "big.png: the image is too large (12000 x 9000 pixels; the limit is 100,000,000 pixels)"
    )
    assert "(40 x 30 pixels" in refused(
        png_bytes(np.zeros((30, 40), np.uint8)), "s.png", max_pixels=1000
    )



# ----------------------------------------------------------------------------- real files


def test_real_covidqu_png_loads(tmp_path: Path) -> None:
    require_data(COVIDQU_DIR, "COVID-QU-Ex val images")
    files = sorted(COVIDQU_DIR.glob("*.png"))
    assert files, f"{COVIDQU_DIR} holds no PNG"
    source = files[0]  # e.g. "Normal (10233).png": spaces and parentheses in the name
    expected = np.asarray(Image.open(source).convert("L"))
    image = load_image(source)
    assert image.format == "PNG" and image.pixels.ndim == 2
    assert np.array_equal(image.pixels, expected)
    assert image.rgb().shape == (*expected.shape, 3)
    copy = shutil.copy(source, tmp_path / "copy (2) of scan.PNG")
    assert np.array_equal(load_image(copy).pixels, expected)


def test_real_rgba_png_loads_as_grey() -> None:
    require_data(RGBA_PNG, "an RGBA PNG of covid-chestxray GB")
    rgba = np.asarray(Image.open(RGBA_PNG))
    assert rgba.shape[2] == 4
    image = load_image(RGBA_PNG)
    assert image.pixels.shape == rgba.shape[:2]  # opaque, equal channels -> grey
    assert np.array_equal(image.pixels, rgba[:, :, 0])
