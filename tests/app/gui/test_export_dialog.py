"""Ctrl+E: choose formats in a dialog; the status bar says what was written and why a chosen
format wrote nothing."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from engine.project import read_labelme, read_nifti
from tests.app.conftest import drag_box, wait_settled


def test_export_dialog_writes_the_chosen_formats_and_says_why_no_dicom_seg(
    qtbot, gui_model, image_folder, make_window, tmp_path, private_preferences
):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = make_window([image_folder])
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    mask = window.annotator.session.masks["lungs"].copy()
    stem = window.annotator.session.rel_path.rsplit("/", 1)[-1][: -len(".png")]
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    dialog = window.export_dialog
    qtbot.waitExposed(dialog)
    assert set(dialog.boxes) == {"png", "coco", "dicom_seg", "nifti", "labelme", "yolo"}
    assert [k for k, b in dialog.boxes.items() if b.isChecked()] == ["png", "coco", "dicom_seg"]
    assert not dialog.export_button.isEnabled()  # no folder yet
    dialog.boxes["coco"].setChecked(False)
    dialog.boxes["nifti"].setChecked(True)
    dialog.boxes["labelme"].setChecked(True)
    out = tmp_path / "export"
    dialog.folder.setText(str(out))
    with qtbot.waitSignal(window.export_done, timeout=20000):
        QTest.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    message = window.statusBar().currentMessage()
    assert message == "exported 1 PNG, 1 NIfTI, 1 LabelMe, measurements.csv/.json; no DICOM-SEG: source is not DICOM"
    assert (out / "measurements.csv").is_file() and (out / "measurements.json").is_file()
    assert not (out / "annotations_coco.json").exists()
    assert np.array_equal(read_nifti(out / "nifti" / f"{stem}_lungs.nii.gz"), mask)
    polygons = read_labelme(out / "labelme" / f"{stem}.json")["lungs"]
    assert np.array_equal(polygons, ndimage.binary_fill_holes(mask))  # polygons carry no holes
    assert "export" in private_preferences.read_text()  # the choice is remembered
    again = window.export_dialog.__class__(window)
    assert [k for k, b in again.boxes.items() if b.isChecked()] == ["png", "dicom_seg", "nifti", "labelme"]
    assert again.folder.text() == str(out)
