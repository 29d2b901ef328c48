"""engine.imaging.loader: listing, in-memory files, and fuzzed input that may only end in an ImageLoadError."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.errors import ImageLoadError, LungSamError
from engine.imaging import (
    MAX_PIXELS,
    SUPPORTED_EXTENSIONS,
    LoadedImage,
    apply_window,
    is_supported_image,
    load_image,
    load_image_bytes,
)
from tests.engine.imaging.image_files import (
    RAMP12,
    dicom_bytes,
    make_dicom,
    png_bytes,
    tiff_bytes,
    write,
)

RNG = np.random.default_rng(1234)


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
