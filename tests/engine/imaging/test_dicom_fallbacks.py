"""DICOM files from pydicom's own corpus: 12-bit JPEG Extended decoded through GDCM, and a
broken JPEG 2000 refused with one clean error and no logged traceback; GDCM only ever runs in
a child process, because corrupt JPEG data makes it abort."""

from __future__ import annotations

import io
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.pixels import get_decoder
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    RLELossless,
)

from engine.errors import ImageLoadError
from engine.imaging import load_image
from engine.imaging.gdcm_io import decode_with_gdcm
from tests.engine.imaging.image_files import pydicom_corpus_file


def test_12_bit_jpeg_extended_decodes_through_gdcm(capfd):
    pytest.importorskip("gdcm")
    image = load_image(pydicom_corpus_file("JPEG-lossy.dcm"))
    assert image.format == "DICOM" and image.pixels.shape == (1024, 256)
    # reference values of this file as pydicom's own GDCM tests state them
    assert image.raw[420, 140] == 244 and image.raw[230, 120] == 95
    out, err = capfd.readouterr()
    assert err == ""  # libjpeg's "Unsupported JPEG data precision 12" stays muted


def test_a_corrupt_jpeg2000_fails_without_a_logged_traceback(caplog):
    path = pydicom_corpus_file("JPEG2000-embedded-sequence-delimiter.dcm")
    with caplog.at_level(logging.DEBUG), pytest.raises(ImageLoadError, match="corrupt"):
        load_image(path)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]



ABORTS_GDCM = Path(__file__).parent / "fixtures" / "gdcm_aborts.dcm"
"""A 1.6 KB synthetic JPEG DICOM mutated by the fuzz test (``test_fuzz_io.py``): GDCM's JPEG
codec throws a C++ exception on it that aborts the process (SIGABRT)."""


def test_gdcm_aborts_on_this_file_when_run_in_process():
    """The reason GDCM runs in a child: done in a process of its own, it kills that process."""
    pytest.importorskip("gdcm")
    code = "import sys; from engine.imaging.gdcm_io import _decode_here; _decode_here(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, str(ABORTS_GDCM)], capture_output=True, timeout=60,
                          check=False, cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == -signal.SIGABRT


def test_a_gdcm_abort_is_a_refusal_and_we_survive():
    pytest.importorskip("gdcm")
    data = ABORTS_GDCM.read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    assert decode_with_gdcm(data, int(ds.Rows), int(ds.Columns)) is None


@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessSV1, JPEG2000Lossless, RLELossless])
def test_pydicom_never_hands_pixel_data_to_gdcm_in_our_process(syntax):
    # importing engine.imaging (above) switched pydicom's GDCM plugin off
    assert "gdcm" not in get_decoder(syntax).available_plugins
