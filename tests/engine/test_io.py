"""engine.imaging.loader / engine.imaging.dicom_io: every input is built here (or is one real dataset file)."""

from __future__ import annotations

import io
import shutil
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, features
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from engine.errors import ImageLoadError, LungSamError
from engine.imaging import (
    MAX_PIXELS,
    SUPPORTED_EXTENSIONS,
    LoadedImage,
    Window,
    apply_window,
    default_window,
    dicom_io,
    is_supported_image,
    load_image,
    load_image_bytes,
)

DATA = Path("/work/shared/data")
COVIDQU_DIR = DATA / "covidqu_ex" / "val" / "images"
RGBA_PNG = DATA / "covid_chestxray_gb" / "images" / "23E99E2E-447C-46E5-8EB2-D35D12473C39.png"
RNG = np.random.default_rng(1234)
RAMP12 = (np.arange(48 * 64).reshape(48, 64) * 4095 // (48 * 64 - 1)).astype(np.uint16)

# ----------------------------------------------------------------------------- builders


def png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    image = Image.fromarray(arr, mode=mode) if mode else Image.fromarray(arr)
    image.save(buf, format="PNG")
    return buf.getvalue()


def tiff_bytes(arr: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kwargs)
    return buf.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def make_dicom(arr: np.ndarray, photometric: str = "MONOCHROME2", **attrs) -> FileDataset:
    """A minimal valid DX image (Explicit VR Little Endian) holding ``arr``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "P-001"
    ds.PatientName = "Doe^Jane"
    ds.Modality = "DX"
    ds.Rows, ds.Columns = arr.shape[:2]
    ds.SamplesPerPixel = 1 if arr.ndim == 2 else 3
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = ds.BitsAllocated if arr.dtype != np.uint16 else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if np.issubdtype(arr.dtype, np.signedinteger) else 0
    if arr.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def dicom_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def huge_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG whose pixels are all black: tiny on disk, huge once decoded."""

    def chunk(tag: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)

    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def refused(data: bytes | Path, name: str = "x.bin", **kwargs) -> str:
    """Message of the ImageLoadError that loading ``data`` raises (it must name the file)."""
    with pytest.raises(ImageLoadError) as info:
        if isinstance(data, Path):
            load_image(data, **kwargs)
        else:
            load_image_bytes(data, name, **kwargs)
    message = str(info.value)
    assert message.startswith((data.name if isinstance(data, Path) else name) + ": ")
    return message


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


# ----------------------------------------------------------------------------- DICOM


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    mono2 = load_image_bytes(dicom_bytes(make_dicom(RAMP12)), "m2.dcm")
    mono1 = load_image(write(tmp_path, "m1.dcm", dicom_bytes(make_dicom(RAMP12, "MONOCHROME1"))))
    assert mono1.invert and not mono2.invert
    assert np.array_equal(mono1.raw, mono2.raw) and mono1.window == mono2.window
    assert np.array_equal(mono1.pixels, 255 - mono2.pixels)
    assert mono1.pixels[0, 0] == 255 and mono1.pixels[-1, -1] == 0  # low stored value is white


def test_rescale_slope_intercept_applied() -> None:
    ds = make_dicom(RAMP12, RescaleSlope=2, RescaleIntercept=-1024)
    image = load_image_bytes(dicom_bytes(ds), "ct.dcm")
    assert np.array_equal(image.raw, RAMP12.astype(np.float32) * 2 - 1024)
    assert image.raw.min() == -1024 and image.raw.max() == 4095 * 2 - 1024


def test_signed_pixels_keep_their_sign() -> None:
    signed = np.array([[-1000, -1], [0, 3000]], np.int16)
    image = load_image_bytes(dicom_bytes(make_dicom(signed)), "s.dcm")
    assert np.array_equal(image.raw, signed.astype(np.float32))


def test_window_center_width_used() -> None:
    ds = make_dicom(RAMP12, WindowCenter=[1000, 3000], WindowWidth=[200, 50])  # first pair wins
    image = load_image_bytes(dicom_bytes(ds), "w.dcm")
    assert image.window == Window(center=1000.0, width=200.0)
    raw, pixels = image.raw, image.pixels
    assert np.all(pixels[raw <= 900] == 0) and np.all(pixels[raw >= 1100] == 255)
    mid = (raw > 900) & (raw < 1100)
    expected = np.rint((raw[mid] - 900) * 255 / 200)
    assert np.abs(pixels[mid].astype(int) - expected).max() <= 1
    assert apply_window(np.array([1000.0]), image.window)[0] == 128


def test_invalid_window_width_falls_back_to_default_window() -> None:
    image = load_image_bytes(
        dicom_bytes(make_dicom(RAMP12, WindowCenter=100, WindowWidth=0)), "z.dcm"
    )
    assert image.window == default_window(image.raw)


def test_8bit_dicom_without_window_is_shown_unchanged() -> None:
    grey = RNG.integers(10, 200, (9, 11), dtype=np.uint8)
    image = load_image_bytes(dicom_bytes(make_dicom(grey)), "sc.dcm")
    assert image.window == Window(center=127.5, width=255.0)
    assert np.array_equal(image.pixels, grey)  # same as the PNG of the same picture


def test_default_window_used_when_dicom_has_none() -> None:
    image = load_image_bytes(dicom_bytes(make_dicom(RAMP12)), "n.dcm")
    low, high = np.percentile(RAMP12, [0.5, 99.5])
    assert image.window.center == pytest.approx((low + high) / 2)
    assert image.window.width == pytest.approx(high - low)


def test_voi_lut_sequence_used() -> None:
    lut = np.rint(np.sqrt(np.arange(4096) / 4095) * 4095).astype(np.uint16)  # brightens shadows
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 12]
    item.add_new("LUTData", "US", lut.tolist())
    ds = make_dicom(RAMP12, WindowCenter=100, WindowWidth=10)  # the LUT takes precedence
    ds.VOILUTSequence = [item]
    image = load_image_bytes(dicom_bytes(ds), "lut.dcm")
    expected = np.rint(lut[RAMP12] * 255.0 / 4095)
    assert np.abs(image.pixels.astype(int) - expected).max() <= 1
    quarter = np.argmin(np.abs(RAMP12.ravel().astype(int) - 1024))
    assert image.pixels.ravel()[quarter] == pytest.approx(128, abs=1)  # linear would be ~64
    assert np.array_equal(image.pixels, apply_window(image.raw, image.window))


def test_pixel_spacing_kept() -> None:
    image = load_image_bytes(dicom_bytes(make_dicom(RAMP12, PixelSpacing=[0.139, 0.143])), "p.dcm")
    assert image.pixel_spacing == (0.139, 0.143)
    ds = make_dicom(RAMP12, ImagerPixelSpacing=[0.2, 0.25])
    assert load_image_bytes(dicom_bytes(ds), "i.dcm").pixel_spacing == (0.2, 0.25)
    assert load_image_bytes(dicom_bytes(make_dicom(RAMP12)), "none.dcm").pixel_spacing is None


def test_dicom_meta_kept_for_seg_export() -> None:
    ds = make_dicom(RAMP12)
    meta = load_image_bytes(dicom_bytes(ds), "m.dcm").dicom_meta
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        assert meta[keyword] == str(ds[keyword].value)
    assert meta["PatientID"] == "P-001" and meta["PatientName"] == "Doe^Jane"
    assert meta["Modality"] == "DX" and meta["TransferSyntaxUID"] == "1.2.840.10008.1.2.1"
    assert all(isinstance(value, str) for value in meta.values())


def test_multiframe_refused_with_clear_message() -> None:
    frames = np.zeros((12, 8, 8), np.uint16)
    ds = make_dicom(frames[0])
    ds.NumberOfFrames = 12
    ds.PixelData = frames.tobytes()
    message = refused(dicom_bytes(ds), "y.dcm")
    assert message == "y.dcm: multi-frame DICOM (12 frames) is not supported; export a single frame"


def test_no_pixel_data_refused() -> None:
    ds = make_dicom(RAMP12)
    del ds.PixelData
    assert refused(dicom_bytes(ds), "scan.dcm").startswith(
        "scan.dcm: the DICOM file has no pixel data"
    )


def test_truncated_dicom_refused(tmp_path: Path) -> None:
    data = dicom_bytes(make_dicom(RAMP12))
    message = refused(write(tmp_path, "cut.dcm", data[:-1000]))
    assert message == "cut.dcm: the DICOM pixel data is truncated or corrupt"


def test_dicom_size_checked_before_decoding() -> None:
    ds = make_dicom(np.zeros((2, 2), np.uint16))
    ds.Rows = ds.Columns = 20000  # header claims 400 M pixels; the data is 8 bytes
    assert "too large (20000 x 20000 pixels" in refused(dicom_bytes(ds), "bomb.dcm")


def test_preamble_less_dicom_read_only_with_dcm_extension() -> None:
    plain = Dataset()
    source = make_dicom(RAMP12)
    for element in source:
        plain.add(element)
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, plain, implicit_vr=True, little_endian=True)
    data = buf.getvalue()
    assert data[128:132] != b"DICM"
    image = load_image_bytes(data, "old.dcm")
    assert image.format == "DICOM" and np.array_equal(image.raw, RAMP12.astype(np.float32))
    assert "unknown image format" in refused(data, "old")
    assert "not a valid DICOM file" in refused(b"\x00\x01garbage" * 20, "junk.dcm")


def test_rgb_dicom_loads_as_rgb() -> None:
    rgb = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = load_image_bytes(dicom_bytes(make_dicom(rgb, "RGB")), "c.dcm")
    assert image.raw is None and image.window is None and np.array_equal(image.pixels, rgb)


def test_ybr_full_dicom_converted_to_rgb() -> None:
    from pydicom.pixels import convert_color_space

    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, :3] = (220, 30, 40)
    rgb[:, 3:] = (20, 180, 90)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    image = load_image_bytes(dicom_bytes(make_dicom(ybr, "YBR_FULL")), "ybr.dcm")
    assert image.pixels.shape == (4, 6, 3)
    assert np.abs(image.pixels.astype(int) - rgb).max() <= 2


@pytest.mark.parametrize(
    "syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless], ids=lambda s: s.name
)
def test_compressed_dicom_decodes(syntax: pydicom.uid.UID) -> None:
    encoder = pydicom.pixels.get_encoder(syntax)
    if not encoder.is_available:
        pytest.skip(f"no encoder for {syntax.name}: {encoder.missing_dependencies}")
    ds = make_dicom(RAMP12, WindowCenter=2048, WindowWidth=4096)
    ds.compress(syntax)
    image = load_image_bytes(dicom_bytes(ds), "c.dcm")
    assert image.dicom_meta["TransferSyntaxUID"] == syntax
    assert np.array_equal(image.raw, RAMP12.astype(np.float32))


@pytest.mark.parametrize("colour", [False, True], ids=["grey", "ybr"])
def test_jpeg_baseline_dicom_decodes(colour: bool) -> None:
    if colour:
        arr = np.zeros((16, 24, 3), np.uint8)
        arr[...] = (200, 60, 30)
    else:
        arr = np.tile(np.arange(0, 240, 10, dtype=np.uint8), (16, 1))
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    ds = make_dicom(arr, "YBR_FULL_422" if colour else "MONOCHROME2")
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    image = load_image_bytes(dicom_bytes(ds), "j.dcm")
    decoded = image.pixels if colour else image.raw  # grey pixels are windowed
    assert decoded.shape == arr.shape and (image.raw is None) == colour
    assert np.abs(decoded.astype(int) - arr).max() <= 3


def test_missing_decoder_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unavailable:
        is_available = False
        missing_dependencies = ["pylibjpeg - requires pylibjpeg-openjpeg"]

    monkeypatch.setattr(dicom_io, "get_decoder", lambda uid: Unavailable())
    ds = make_dicom(np.zeros((4, 4), np.uint16))
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 40])
    ds["PixelData"].VR = "OB"
    message = refused(dicom_bytes(ds), "j2k.dcm")
    assert "JPEG 2000" in message and "install pylibjpeg and pylibjpeg-openjpeg" in message


def test_unsupported_transfer_syntax_refused() -> None:
    ds = make_dicom(np.zeros((4, 4), np.uint16))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video
    ds.PixelData = encapsulate([b"\0" * 16])
    ds["PixelData"].VR = "OB"
    assert "is not supported" in refused(dicom_bytes(ds), "video.dcm")


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


# ----------------------------------------------------------------------------- listing


def test_is_supported_image_by_extension_and_dicom_preamble(tmp_path: Path) -> None:
    assert {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom"} <= SUPPORTED_EXTENSIONS
    assert is_supported_image(tmp_path / "never_created.PNG")  # no file access for known extensions
    assert is_supported_image(Path("a/b/c.DcM"))
    assert not is_supported_image(write(tmp_path, "notes.txt", b"text"))
    assert not is_supported_image(write(tmp_path, "._scan.png", b"\0" * 10))
    dicom = dicom_bytes(make_dicom(RAMP12))
    assert is_supported_image(write(tmp_path, "IM0001", dicom))
    assert is_supported_image(write(tmp_path, "1.2.840.113619.2.55", dicom))
    assert not is_supported_image(write(tmp_path, "README", b"plain text, long enough" * 10))
    assert not is_supported_image(write(tmp_path, "DICOMDIR", dicom))
    assert not is_supported_image(tmp_path / "missing_no_ext")
    assert np.array_equal(load_image(tmp_path / "IM0001").raw, RAMP12.astype(np.float32))


def test_load_image_bytes_matches_load_image(tmp_path: Path) -> None:
    data = dicom_bytes(make_dicom(RAMP12, "MONOCHROME1", PixelSpacing=[0.1, 0.1]))
    from_file = load_image(write(tmp_path, "same.dcm", data))
    from_bytes = load_image_bytes(data, "same.dcm")
    assert from_bytes.path is None and from_file.path == tmp_path / "same.dcm"
    assert np.array_equal(from_file.pixels, from_bytes.pixels)
    assert (
        from_file.window == from_bytes.window
        and from_file.pixel_spacing == from_bytes.pixel_spacing
    )
    assert isinstance(from_file, LoadedImage) and MAX_PIXELS == 100_000_000
    assert issubclass(ImageLoadError, LungSamError)


# ----------------------------------------------------------------------------- real files


def test_real_covidqu_png_loads(tmp_path: Path) -> None:
    files = sorted(COVIDQU_DIR.glob("*.png")) if COVIDQU_DIR.is_dir() else []
    if not files:
        pytest.skip(f"{COVIDQU_DIR} is not available")
    source = files[0]  # e.g. "Normal (10233).png": spaces and parentheses in the name
    expected = np.asarray(Image.open(source).convert("L"))
    image = load_image(source)
    assert image.format == "PNG" and image.pixels.ndim == 2
    assert np.array_equal(image.pixels, expected)
    assert image.rgb().shape == (*expected.shape, 3)
    copy = shutil.copy(source, tmp_path / "copy (2) of scan.PNG")
    assert np.array_equal(load_image(copy).pixels, expected)


def test_real_rgba_png_loads_as_grey() -> None:
    if not RGBA_PNG.is_file():
        pytest.skip(f"{RGBA_PNG} is not available")
    rgba = np.asarray(Image.open(RGBA_PNG))
    assert rgba.shape[2] == 4
    image = load_image(RGBA_PNG)
    assert image.pixels.shape == rgba.shape[:2]  # opaque, equal channels -> grey
    assert np.array_equal(image.pixels, rgba[:, :, 0])


# ----------------------------------------------------------------------------- fuzzing

VALID_FILES = {
    "f.png": png_bytes(RNG.integers(0, 256, (16, 16), dtype=np.uint8)),
    "f.tif": tiff_bytes((RNG.random((16, 16)) * 4000).astype(np.uint16)),
    "f.dcm": dicom_bytes(make_dicom(RAMP12[:16, :16], WindowCenter=100, WindowWidth=50)),
}
_buf = io.BytesIO()
Image.fromarray(RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(_buf, format="JPEG")
VALID_FILES["f.jpg"] = _buf.getvalue()
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_outcome(data: bytes, name: str) -> None:
    """Loading anything either gives a consistent image or an ImageLoadError, nothing else."""
    try:
        image = load_image_bytes(data, name, max_pixels=1_000_000)
    except ImageLoadError as exc:
        assert str(exc).startswith(name + ": ")
        return
    assert image.pixels.dtype == np.uint8 and image.pixels.ndim in (2, 3)
    if image.raw is not None:
        assert np.isfinite(image.raw).all()
        assert np.array_equal(apply_window(image.raw, image.window, image.invert), image.pixels)


@pytest.mark.filterwarnings("ignore")
@FUZZ
@given(
    name=st.sampled_from(sorted(VALID_FILES)),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    cut=st.integers(1, 10_000),
)
def test_corrupted_files_raise_only_image_load_error(
    name: str, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(VALID_FILES[name])
    for position, value in flips:
        data[position % len(data)] = value
    check_outcome(bytes(data[: max(1, len(data) - cut % len(data))]), name)


@pytest.mark.filterwarnings("ignore")
@FUZZ
@given(
    magic=st.sampled_from(
        [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"\0" * 128 + b"DICM"]
    ),
    tail=st.binary(max_size=300),
    name=st.sampled_from(["r.png", "r.dcm", "r"]),
)
def test_random_bytes_raise_only_image_load_error(magic: bytes, tail: bytes, name: str) -> None:
    check_outcome(magic + tail, name)
