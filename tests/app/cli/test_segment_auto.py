"""`lungsam segment --auto`: zero-click masks on real radiographs with the shipped model, the
CSV a script reads, the patient's left/right files, and unreadable files listed, not fatal."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli import main
from app.cli.segment_auto import AUTO_CSV, COLUMNS, EXIT_SOME_UNREADABLE
from engine.models import load_model
from engine.models.registry import resources_dir


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("samples")
    for path in sorted((resources_dir() / "samples").glob("*.[pj][np]g")):
        shutil.copy(path, folder / path.name)
    return folder


def _read(out: Path) -> list[dict[str, str]]:
    with open(out / AUTO_CSV, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_shipped_model_proposes_both_lungs_with_its_box_head():
    model = load_model(None)
    assert model.box_head is not None, model.box_head_problem


def test_auto_writes_union_and_patient_sides_and_a_csv_row_per_image(samples, tmp_path):
    out = tmp_path / "out"
    assert main(["segment", "--auto", str(samples), "--device", "cpu", "-o", str(out)]) == 0
    rows = _read(out)
    assert list(rows[0].keys()) == list(COLUMNS)
    assert sorted(r["name"] for r in rows) == sorted(p.stem for p in samples.iterdir())
    for row in rows:
        union = np.array(Image.open(out / f"{row['name']}.png")) > 0
        left = np.array(Image.open(out / f"{row['name']}_left.png")) > 0
        right = np.array(Image.open(out / f"{row['name']}_right.png")) > 0
        with Image.open(samples / row["file"]) as img:
            assert union.shape == (img.height, img.width)
        assert np.array_equal(union, left | right) and not (left & right).any()
        width = union.shape[1]
        # the patient's left lung is on the image's right
        assert np.nonzero(left)[1].mean() > width / 2 > np.nonzero(right)[1].mean()
        x0, y0, x1, y1 = (int(row[k]) for k in ("x0", "y0", "x1", "y1"))
        ys, xs = np.nonzero(union)
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert 0.0 < float(row["quality"]) <= 1.0 and row["status"] == "ok"
        assert row["area_unit"] == "px²"
        assert float(row["left_area"]) == left.sum() and float(row["right_area"]) == right.sum()


def test_an_unreadable_file_gets_its_row_and_the_others_go_on(samples, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(samples, folder)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    assert main(["segment", "--auto", str(folder), "--device", "cpu", "-o", str(out)]) == EXIT_SOME_UNREADABLE
    rows = {r["name"]: r for r in _read(out)}
    assert rows["broken"]["status"].startswith("unreadable: ") and rows["broken"]["quality"] == "0.0000"
    assert len(rows) == len(list(samples.iterdir())) + 1
    assert all((out / f"{n}.png").is_file() for n in rows if n != "broken")
    assert not (out / "broken.png").exists()


def test_auto_refuses_prompts(samples, tmp_path, capsys):
    rc = main(["segment", "--auto", str(samples), "--box", "1,2,3,4", "-o", str(tmp_path / "o")])
    assert rc != 0
    assert "--auto proposes the lungs itself" in capsys.readouterr().err
