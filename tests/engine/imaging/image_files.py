"""Image files built in memory for the imaging tests (PNG, TIFF, DICOM) and the shared data paths."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import (
    generate_uid,
)

from engine.errors import ImageLoadError
from engine.imaging import (
    load_image,
    load_image_bytes,
)
from tests.conftest import DATA_ROOT as DATA

COVIDQU_DIR = DATA / "covidqu_ex" / "val" / "images"
RGBA_PNG = DATA / "covid_chestxray_gb" / "images" / "23E99E2E-447C-46E5-8EB2-D35D12473C39.png"
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


def pydicom_corpus_file(name: str) -> str:
    """A file of pydicom's own test corpus (local copy only); the test skips without it."""
    data = pytest.importorskip("pydicom.data")
    try:
        return data.get_testdata_file(name, download=False)
    except Exception:
        pytest.skip(f"{name} is not in pydicom's local test data")


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
