"""measurements.csv / measurements.json: one row per annotated image, the patient's sides."""

from __future__ import annotations

import csv
import json
import os
import stat

import numpy as np
import pytest

from engine.measure import MEASUREMENT_COLUMNS
from engine.project import export_measurements, label_areas
from engine.spacing import PixelSpacing


def lungs_by_side(shape=(200, 300)) -> dict[str, np.ndarray]:
    """Patient's right lung on the image's left (100x100 px), left lung on the right (100x150)."""
    right, left = np.zeros(shape, bool), np.zeros(shape, bool)
    right[50:150, 20:120] = True
    left[50:150, 140:290] = True
    return {"right lung": right, "left lung": left}


def read_csv(path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_label_areas_take_the_patients_sides():
    areas = label_areas(lungs_by_side(), None)
    assert areas.right == 100 * 100 and areas.left == 100 * 150  # left lung = image right
    assert areas.both == 25_000


def test_store_export_writes_one_row_per_annotated_image(store, tmp_path):
    store.save_annotation("sub/c.dcm", lungs_by_side(), "corrected")
    both = np.zeros((200, 300), bool)
    both[10:60, 10:60] = True
    store.save_annotation("a.png", {"lungs": both}, "model")
    spacings = {"sub/c.dcm": PixelSpacing(0.2, 0.2, "at detector")}
    out = tmp_path / "export"
    paths = export_measurements(store, out, spacing_of=spacings.get)
    assert paths == [out / "measurements.csv", out / "measurements.json"]

    rows = {row["name"]: row for row in read_csv(out / "measurements.csv")}
    assert set(rows) == {"a.png", "sub/c.dcm"}  # b.png has no annotation
    assert list(rows["a.png"]) == list(MEASUREMENT_COLUMNS)
    assert rows["sub/c.dcm"] == {
        "name": "sub/c.dcm", "left_area": "6.0", "right_area": "4.0", "both_area": "10.0",
        "area_unit": "cm²", "spacing_source": "at detector", "row_mm": "0.2", "col_mm": "0.2",
    }
    assert rows["a.png"] == {
        "name": "a.png", "left_area": "", "right_area": "", "both_area": "2500",
        "area_unit": "px²", "spacing_source": "", "row_mm": "", "col_mm": "",
    }

    document = json.loads((out / "measurements.json").read_text(encoding="utf-8"))
    assert document["columns"] == list(MEASUREMENT_COLUMNS)
    assert "patient's lungs" in document["convention"]
    by_name = {row["name"]: row for row in document["images"]}
    assert by_name["sub/c.dcm"]["left_area"] == 6.0 and by_name["sub/c.dcm"]["right_area"] == 4.0
    assert by_name["a.png"]["left_area"] is None and by_name["a.png"]["area_unit"] == "px²"


def test_kind_chooses_the_annotations_like_the_other_exports(store, tmp_path):
    masks = lungs_by_side()
    store.save_annotation("a.png", masks, "corrected")
    store.save_annotation("b.png", masks, "model")
    export_measurements(store, tmp_path / "c", kind="corrected")
    assert [row["name"] for row in read_csv(tmp_path / "c" / "measurements.csv")] == ["a.png"]


def test_measurement_files_are_atomic_and_readable_by_others(store, tmp_path):
    store.save_annotation("a.png", lungs_by_side(), "corrected")
    out = tmp_path / "out"
    export_measurements(store, out)
    first = (out / "measurements.csv").read_text(encoding="utf-8")
    export_measurements(store, out)  # replaced whole, no temporary left behind
    assert (out / "measurements.csv").read_text(encoding="utf-8") == first
    assert sorted(p.name for p in out.iterdir()) == ["measurements.csv", "measurements.json"]
    mask = os.umask(0o022)
    os.umask(mask)
    mode = stat.S_IMODE((out / "measurements.json").stat().st_mode)
    assert mode == 0o666 & ~mask


@pytest.mark.parametrize("broken", ["csv", "json"])
def test_a_failed_write_leaves_the_previous_file(store, tmp_path, monkeypatch, broken):
    from engine.project import ExportError

    store.save_annotation("a.png", lungs_by_side(), "corrected")
    out = tmp_path / "out"
    export_measurements(store, out)
    before = (out / f"measurements.{broken}").read_bytes()
    store.save_annotation("a.png", {"lungs": np.ones((200, 300), bool)}, "corrected")
    real = type(out).write_text

    def failing(self, text, *args, **kwargs):
        if self.name.startswith(f".measurements.{broken}"):
            raise OSError(28, "No space left on device")
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(type(out), "write_text", failing)
    with pytest.raises(ExportError, match="No space left"):
        export_measurements(store, out)
    assert (out / f"measurements.{broken}").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
