"""Lung areas beside the labels: cm² with the image's pixel spacing and its source, px²
without; the patient's left lung (image right) beside "Left lung"; written by every export."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from engine.measure import format_area
from tests.app.gui.annotate.test_dicom import write_cxr_dicom
from tests.app.gui_steps import box_both_lungs


def shown(window) -> dict[str, str]:
    return {label: widget.text() for label, widget in window.panel.areas.items()}


def test_dicom_areas_are_in_cm2_at_the_detector_beside_each_lung(qtbot, gui_model, cxr_dir, tmp_path, make_window):
    folder = tmp_path / "dicoms"
    folder.mkdir()
    write_cxr_dicom(folder / "chest.dcm", sorted((cxr_dir / "images").glob("*.png"))[0])  # 0.3 mm
    window = make_window([folder])
    assert shown(window) == {"right lung": "", "left lung": "", "lungs": ""}  # nothing drawn
    assert window.panel.area_note.text() == "Areas in cm²: spacing at detector"
    box_both_lungs(qtbot, window)  # right lung box on the image's left, left lung on its right
    masks = window.annotator.session.masks
    assert masks["left lung"][:, 140:].sum() > masks["left lung"][:, :140].sum()  # image right
    qtbot.waitUntil(lambda: shown(window)["left lung"] != "", timeout=5000)
    cm2 = 0.3 * 0.3 / 100
    assert shown(window) == {
        "right lung": format_area(masks["right lung"].sum() * cm2, "cm²"),
        "left lung": format_area(masks["left lung"].sum() * cm2, "cm²"),
        "lungs": format_area((masks["right lung"] | masks["left lung"]).sum() * cm2, "cm²"),
    }
    assert window.panel.area_note.text() == "Areas in cm²: spacing at detector"
    assert "magnification" in window.panel.area_note.toolTip()

    window.on_save()
    out = tmp_path / "export"
    with qtbot.waitSignal(window.export_done, timeout=30000) as blocker:
        window.export_to(out, ["png"])
    assert not isinstance(blocker.args[0], Exception), blocker.args[0]
    assert "measurements.csv/.json" in window.statusBar().currentMessage()
    with (out / "measurements.csv").open(encoding="utf-8", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["name"] == "chest.dcm" and row["spacing_source"] == "at detector"
    assert float(row["left_area"]) == pytest.approx(masks["left lung"].sum() * cm2, abs=0.005)
    assert (row["area_unit"], row["row_mm"], row["col_mm"]) == ("cm²", "0.3", "0.3")


def test_png_areas_are_in_pixels_and_follow_undo(qtbot, gui_model, image_folder, make_window):
    window = make_window([image_folder])
    box_both_lungs(qtbot, window)
    qtbot.waitUntil(lambda: shown(window)["left lung"] != "", timeout=5000)
    left = int(window.annotator.session.masks["left lung"].sum())
    assert shown(window)["left lung"] == f"{left:,} px²"
    assert window.panel.area_note.text() == "Areas in px²: no pixel spacing"
    window.annotator.undo()  # the left lung's box
    qtbot.waitUntil(lambda: shown(window)["left lung"] in ("", "0 px²"), timeout=5000)
    window.go_to(window.index + 1)
    assert shown(window) == {"right lung": "", "left lung": "", "lungs": ""}  # until it loads


def test_the_panel_keeps_its_width_whatever_the_areas(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtWidgets import QApplication

    from engine.measure import lung_areas

    window = make_window([image_folder])
    QApplication.processEvents()
    canvas_before, panel_before = window.canvas.geometry(), window.panel.width()
    big = np.ones((9000, 9000), bool)
    window.panel.set_areas(lung_areas(big, big, None, lungs_mask=big))  # 81,000,000 px²
    QApplication.processEvents()
    assert shown(window)["lungs"] == "81,000,000 px²"
    assert window.panel.width() == panel_before and window.canvas.geometry() == canvas_before
