"""Synthetic single-frame grey DICOM files, written with pydicom.

Tests (DICOM in the window, DICOM-SEG export) and scripts (benchmarks/gui_box_rate.py,
tools/ship_default_model.py) each need a small but valid radiograph on disk. They share this
one writer so the header is built the same way everywhere; the caller brings the pixels and
picks the few tags that differ (SOP class, bits, window, spacing, patient/study details).
Scripts import it after putting the repository root on ``sys.path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

_ERMF = Tag(0x0018, 0x1114)  # EstimatedRadiographicMagnificationFactor


@dataclass(frozen=True)
class ChestStudy:
    """Patient and study tags of a PA chest radiograph (what a DICOM-SEG copies from its source)."""

    birth_date: str
    sex: str
    study_date: str
    study_time: str
    study_id: str
    accession: str


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    patient_id: str,
    patient_name: str | None = None,
    modality: str = "DX",
    sop_class: str = DigitalXRayImageStorageForPresentation,
    bits_stored: int = 12,
    window: tuple[float, float] | None = None,
    pixel_spacing: list[float] | None = None,
    imager_pixel_spacing: list[float] | None = None,
    magnification: float | str | None = None,
    study: ChestStudy | None = None,
) -> Dataset:
    """Write ``pixels`` (2-D uint16) as an uncompressed MONOCHROME2 image and return its dataset.

    New Study/Series/SOP Instance UIDs every call. Optional tags are only written when given:
    PatientName, WindowCenter/WindowWidth (``window``), PixelSpacing, ImagerPixelSpacing,
    EstimatedRadiographicMagnificationFactor (``magnification``; a string is written as the
    raw DS bytes, so tests can plant a malformed value), and with ``study`` the patient/study
    details plus series/instance number 1, CHEST, PA, [R, F].
    """
    if pixels.ndim != 2 or pixels.dtype != np.uint16:
        raise ValueError(f"expected a 2-D uint16 array, got {pixels.ndim}-D {pixels.dtype}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID = modality, patient_id
    if patient_name is not None:
        ds.PatientName = patient_name
    if study is not None:
        ds.PatientBirthDate, ds.PatientSex = study.birth_date, study.sex
        ds.StudyDate, ds.StudyTime = study.study_date, study.study_time
        ds.StudyID, ds.AccessionNumber = study.study_id, study.accession
        ds.ReferringPhysicianName = ""
        ds.SeriesNumber, ds.InstanceNumber, ds.BodyPartExamined = 1, 1, "CHEST"
        ds.ViewPosition, ds.PatientOrientation = "PA", ["R", "F"]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0  # unsigned
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if pixel_spacing is not None:
        ds.PixelSpacing = pixel_spacing
    if imager_pixel_spacing is not None:
        ds.ImagerPixelSpacing = imager_pixel_spacing
    if isinstance(magnification, str):
        raw = magnification.encode("ascii")
        raw += b" " * (len(raw) % 2)
        ds[_ERMF] = RawDataElement(_ERMF, "DS", len(raw), raw, 0, False, True)
    elif magnification is not None:
        ds.EstimatedRadiographicMagnificationFactor = magnification
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return ds
