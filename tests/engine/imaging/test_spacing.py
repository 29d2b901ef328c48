"""Pixel spacing with its provenance: calibrated, corrected for magnification, at detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from engine.imaging import PixelSpacing, load_image, read_pixel_spacing
from tests.dicom_factory import write_dicom

PIXELS = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 64)


def dicom(tmp_path: Path, name: str = "x.dcm", **tags) -> Path:
    path = tmp_path / name
    write_dicom(path, PIXELS, patient_id="SP1", **tags)
    return path


def spacing(path: Path) -> PixelSpacing | None:
    """The spacing of the decoded image, checked equal to the header-only reading."""
    loaded = load_image(path).spacing
    assert read_pixel_spacing(path) == loaded
    return loaded


def test_pixel_spacing_alone_is_calibrated(tmp_path):
    got = spacing(dicom(tmp_path, pixel_spacing=[0.139, 0.143]))
    assert got == PixelSpacing(0.139, 0.143, "calibrated")
    assert load_image(dicom(tmp_path, pixel_spacing=[0.139, 0.143])).pixel_spacing == (0.139, 0.143)


def test_imager_pixel_spacing_alone_is_at_the_detector(tmp_path):
    assert spacing(dicom(tmp_path, imager_pixel_spacing=[0.2, 0.25])) == PixelSpacing(0.2, 0.25, "at detector")


def test_magnification_factor_divides_the_detector_spacing(tmp_path):
    got = spacing(dicom(tmp_path, imager_pixel_spacing=[0.2, 0.25], magnification=1.25))
    assert got is not None and got.source == "corrected" and got.magnification == 1.25
    assert got.row_mm == pytest.approx(0.16) and got.col_mm == pytest.approx(0.2)


@pytest.mark.parametrize("factor", ["abc", "nan", "inf", "0", "-1.1", ""])
def test_a_garbage_magnification_factor_is_ignored(tmp_path, factor):
    path = dicom(tmp_path, imager_pixel_spacing=[0.2, 0.2], magnification=factor)
    assert spacing(path) == PixelSpacing(0.2, 0.2, "at detector")
    assert load_image(path).pixels.shape == (8, 8)  # and the image still opens


def test_a_calibrated_pixel_spacing_is_never_divided_again(tmp_path):
    path = dicom(tmp_path, pixel_spacing=[0.16, 0.16], imager_pixel_spacing=[0.2, 0.2], magnification=1.25)
    assert spacing(path) == PixelSpacing(0.16, 0.16, "calibrated")


def test_pixel_spacing_equal_to_the_detectors_is_the_detector_spacing(tmp_path):
    """PS3.3 10.7.1.1: an uncalibrated PixelSpacing repeats ImagerPixelSpacing."""
    same = dicom(tmp_path, "same.dcm", pixel_spacing=[0.2, 0.2], imager_pixel_spacing=[0.2, 0.2])
    assert spacing(same) == PixelSpacing(0.2, 0.2, "at detector")
    corrected = dicom(tmp_path, "mag.dcm", pixel_spacing=[0.2, 0.2], imager_pixel_spacing=[0.2, 0.2],
                      magnification=1.1)
    got = spacing(corrected)
    assert got is not None and got.source == "corrected" and got.row_mm == pytest.approx(0.2 / 1.1)


def test_a_stated_calibration_keeps_pixel_spacing_even_when_equal(tmp_path):
    path = dicom(tmp_path, pixel_spacing=[0.2, 0.2], imager_pixel_spacing=[0.2, 0.2], magnification=1.1)
    ds = pydicom.dcmread(path)
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    ds.save_as(path)
    assert spacing(path) == PixelSpacing(0.2, 0.2, "calibrated")


def test_a_malformed_pixel_spacing_falls_back_to_the_detectors(tmp_path):
    path = dicom(tmp_path, pixel_spacing=[0.0, 0.2], imager_pixel_spacing=[0.3, 0.3])
    assert spacing(path) == PixelSpacing(0.3, 0.3, "at detector")


def test_no_spacing_tags_no_spacing(tmp_path):
    assert spacing(dicom(tmp_path)) is None
    png = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray((PIXELS // 16).astype(np.uint8)).save(png)
    assert read_pixel_spacing(png) is None and load_image(png).spacing is None
    assert read_pixel_spacing(tmp_path / "missing.dcm") is None


def test_pixel_spacing_refuses_nonsense():
    for bad in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            PixelSpacing(bad, 0.2, "calibrated")
    with pytest.raises(ValueError):
        PixelSpacing(0.2, 0.2, "guessed")  # type: ignore[arg-type]
