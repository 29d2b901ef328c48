"""DICOM in the window: shown with its own window, re-windowed by drag and presets,
exported as a DICOM-SEG that highdicom reads back."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from tests.app.conftest import drag_box
from tests.app.gui_steps import box_both_lungs
from tests.dicom_factory import ChestStudy, write_dicom


def write_cxr_dicom(path: Path, source_png: Path, center: float = 2000.0, width: float = 3000.0) -> Dataset:
    """A 16-bit (12 stored) MONOCHROME2 DX image made from a real CXR, with proper UIDs."""
    grey = np.array(Image.open(source_png).convert("L")).astype(np.uint16) * 16
    study = ChestStudy("19600101", "M", "20240301", "090000", study_id="7", accession="ACC7")
    return write_dicom(path, grey, patient_id="GUI0001", patient_name="Gui^Test", study=study,
                       window=(center, width), imager_pixel_spacing=[0.3, 0.3])


def test_dicom_opens_with_its_window_and_rewindows_for_display_only(qtbot, gui_model, cxr_dir, tmp_path, make_window):
    from PySide6.QtCore import Qt

    from engine.imaging import Window, apply_window

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
    box_both_lungs(qtbot, window)
    masks = {label: m.copy() for label, m in window.annotator.session.masks.items()}
    window.on_save()
    out = tmp_path / "export"
    old_umask = os.umask(0o022)  # the usual one: exports are for other people and tools
    try:
        with qtbot.waitSignal(window.export_done, timeout=30000) as blocker:
            window.export_to(out)
    finally:
        os.umask(old_umask)
    assert not isinstance(blocker.args[0], Exception), blocker.args[0]
    written = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"case1_seg.dcm", "case1_lungs.png", "measurements.csv", "measurements.json"}
    assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o644}
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
