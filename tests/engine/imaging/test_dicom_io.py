"""engine.imaging.dicom_io (through the loader): every input is built here."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from engine.imaging import (
    Window,
    apply_window,
    default_window,
    dicom_io,
    load_image,
    load_image_bytes,
)
from tests.engine.imaging.image_files import RAMP12, dicom_bytes, make_dicom, refused, write

RNG = np.random.default_rng(1234)


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


@pytest.mark.parametrize(
    ("stored", "slope", "intercept"),
    [
        (RAMP12, None, None),  # no rescale tags
        (RAMP12, 1, 0),
        (RAMP12, 3, -1024),
        (np.array([[-32768, -1], [0, 32767]], np.int16), 2, 7),
        (RAMP12, 1.1, -0.7),  # not integers: pydicom's float64 path (float32 would differ)
        (np.array([[0, 65535], [65533, 65531]], np.uint16), 257, 3),  # beyond 2**24: pydicom's path
    ],
)
def test_modality_values_equal_pydicoms_float64_result_cast_to_float32(stored, slope, intercept) -> None:
    """The float32 fast path for integer rescales must give exactly what pydicom gives."""
    attrs = {} if slope is None else {"RescaleSlope": slope, "RescaleIntercept": intercept}
    if stored.dtype == np.uint16 and stored.max() > 4095:
        attrs.update(BitsStored=16, HighBit=15)
    ds = make_dicom(stored, **attrs)
    image = load_image_bytes(dicom_bytes(ds), "r.dcm")
    expected = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    assert image.raw is not None and image.raw.dtype == np.float32
    assert np.array_equal(image.raw, expected)


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
