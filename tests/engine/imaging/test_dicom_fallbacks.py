"""DICOM files from pydicom's own corpus: 12-bit JPEG Extended decoded through GDCM, and a
broken JPEG 2000 refused with one clean error and no logged traceback."""

from __future__ import annotations

import logging

import pytest

from engine.errors import ImageLoadError
from engine.imaging import load_image


def corpus_file(name: str) -> str:
    data = pytest.importorskip("pydicom.data")
    try:
        return data.get_testdata_file(name, download=False)
    except Exception:
        pytest.skip(f"{name} is not in pydicom's local test data")


def test_12_bit_jpeg_extended_decodes_through_gdcm(capfd):
    pytest.importorskip("gdcm")
    image = load_image(corpus_file("JPEG-lossy.dcm"))
    assert image.format == "DICOM" and image.pixels.shape == (1024, 256)
    # reference values of this file as pydicom's own GDCM tests state them
    assert image.raw[420, 140] == 244 and image.raw[230, 120] == 95
    out, err = capfd.readouterr()
    assert err == ""  # libjpeg's "Unsupported JPEG data precision 12" stays muted


def test_a_corrupt_jpeg2000_fails_without_a_logged_traceback(caplog):
    path = corpus_file("JPEG2000-embedded-sequence-delimiter.dcm")
    with caplog.at_level(logging.DEBUG), pytest.raises(ImageLoadError, match="corrupt"):
        load_image(path)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]

