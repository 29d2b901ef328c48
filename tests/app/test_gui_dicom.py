"""DICOM in the window: shown with its own window, re-windowed by drag and presets,
exported as a DICOM-SEG that highdicom reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.app.conftest import drag_box, wait_settled


def write_cxr_dicom(path: Path, source_png: Path, center: float = 2000.0, width: float = 3000.0):
    """A 16-bit (12 stored) MONOCHROME2 DX image made from a real CXR, with proper UIDs."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    grey = np.array(Image.open(source_png).convert("L")).astype(np.uint16) * 16
    sop_class = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = "DX", "GUI0001", "Gui^Test"
    ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime = "19600101", "M", "20240301", "090000"
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "7", "ACC7", ""
    ds.SeriesNumber, ds.InstanceNumber, ds.BodyPartExamined = 1, 1, "CHEST"
    ds.ViewPosition, ds.PatientOrientation = "PA", ["R", "F"]
    ds.Rows, ds.Columns = grey.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = center, width
    ds.ImagerPixelSpacing = [0.3, 0.3]
    ds.PixelData = grey.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return ds


def test_dicom_opens_with_its_window_and_rewindows_for_display_only(qtbot, gui_model, cxr_dir, tmp_path, make_window):
    from PySide6.QtCore import Qt

    from engine.io import Window, apply_window

    folder = tmp_path / "dicoms"
    folder.mkdir()
    source = sorted((cxr_dir / "images").glob("*.png"))[0]
    write_cxr_dicom(folder / "chest.dcm", source)
    window = make_window([folder / "chest.dcm"])  # opened as a file list
    assert window.image.format == "DICOM" and window.image.window == Window(2000.0, 3000.0)
    model_pixels = window.image.pixels.copy()
    shown_before = window.canvas.image_item.image.copy()
    drag_box(qtbot, window, (100, 100, 180, 200), modifier=Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.canvas.image_item.image != shown_before, timeout=5000)
    assert window.window_level.width > 3000.0 and window.window_level.center > 2000.0  # right/down
    assert np.array_equal(window.image.pixels, model_pixels)  # the model input is unchanged
    window.set_window_preset("narrow")
    assert window.window_level == Window(2000.0, 1500.0)
    shown = window.canvas.image_item.image
    expected = apply_window(window.image.raw, Window(2000.0, 1500.0))
    assert shown.pixelColor(128, 128).red() == expected[128, 128]
    assert not window.annotator.session.masks  # window/level drew no box


def test_dicom_seg_export_reads_back_with_highdicom(qtbot, gui_model, cxr_dir, tmp_path, make_window):
    import highdicom as hd

    folder = tmp_path / "dicoms"
    folder.mkdir()
    source = sorted((cxr_dir / "images").glob("*.png"))[1]
    ds = write_cxr_dicom(folder / "case1.dcm", source)
    window = make_window([folder])
    window.on_label_1()
    drag_box(qtbot, window, (20, 30, 120, 220))
    wait_settled(qtbot, window)
    window.on_label_2()
    drag_box(qtbot, window, (140, 30, 240, 220))
    wait_settled(qtbot, window)
    masks = {label: m.copy() for label, m in window.annotator.session.masks.items()}
    window.on_save()
    out = tmp_path / "export"
    with qtbot.waitSignal(window.export_done, timeout=30000) as blocker:
        window.export_to(out)
    assert not isinstance(blocker.args[0], Exception), blocker.args[0]
    seg_path = out / "dicom_seg" / "case1_seg.dcm"
    seg = hd.seg.segread(seg_path)
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == ds.StudyInstanceUID
    referenced = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert referenced.ReferencedSOPInstanceUID == ds.SOPInstanceUID
    labels = [s.SegmentLabel for s in seg.SegmentSequence]
    assert sorted(labels) == ["left lung", "right lung"]
    pixels = seg.get_pixels_by_source_instance(
        [ds.SOPInstanceUID], segment_numbers=[1, 2], combine_segments=False
    )
    for index, label in enumerate(labels):
        assert np.array_equal(pixels[0, :, :, index].astype(bool), masks[label])
