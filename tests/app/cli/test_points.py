"""`lungsam segment --point` and the prompts file with points; `lungsam eval --clicks`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli import main
from app.cli.segment import assign_points
from engine.models import load_model
from engine.predict import Predictor, box_then_clicks, keep_outside_focus
from tests.conftest import synthetic_cxr


@pytest.fixture
def image_file(tmp_path) -> Path:
    path = tmp_path / "chest.png"
    Image.fromarray(synthetic_cxr(96, 80)).save(path)
    return path


def _read(path: Path) -> np.ndarray:
    return np.array(Image.open(path)) > 0


def test_box_and_points_are_the_box_then_each_click_in_order_as_in_the_window(model_dir, image_file, tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(image_file), "--box", "5,10,75,90", "--point", "20,40,1",
                 "--point", "40,50,0", "--model", str(model_dir), "-o", str(out)]) == 0
    pred = Predictor(load_model(model_dir), device="cpu")
    pred.set_image(np.array(Image.open(image_file)))
    box = np.array([5.0, 10, 75, 90])
    first = pred.predict(boxes=box)
    second = pred.predict(boxes=box, points=[[20, 40]], point_labels=[1], mask_input=first.low_res_logits, focus=True)
    third = pred.predict(boxes=box, points=[[20, 40], [40, 50]], point_labels=[1, 0],
                         mask_input=second.low_res_logits, focus=True)
    shown = keep_outside_focus(first.masks[0, 0], second.masks[0, 0], (20, 40))
    shown = keep_outside_focus(shown, third.masks[0, 0], (40, 50))
    assert np.array_equal(_read(out / "chest.png"), shown)
    assert np.array_equal(shown, box_then_clicks(pred, box, [(20, 40), (40, 50)], [1, 0]))


def test_points_alone_segment(model_dir, image_file, tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(image_file), "--point", "20,40,1", "--model", str(model_dir), "-o", str(out)]) == 0
    pred = Predictor(load_model(model_dir), device="cpu")
    pred.set_image(np.array(Image.open(image_file)))
    want = pred.predict(points=[[20, 40]], point_labels=[1]).masks[0, 0]
    assert np.array_equal(_read(out / "chest.png"), want)


def test_prompts_file_points_refine_the_box_that_contains_them(model_dir, image_file, tmp_path):
    spec = {image_file.name: {"boxes": [[5, 10, 40, 90], [40, 10, 78, 90]], "points": [[60, 50, 0]]}}
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(spec))
    out = tmp_path / "out"
    assert main(["segment", "--prompts", str(prompts), "--model", str(model_dir), "-o", str(out)]) == 0
    pred = Predictor(load_model(model_dir), device="cpu")
    pred.set_image(np.array(Image.open(image_file)))
    first = pred.predict(boxes=[5, 10, 40, 90]).masks[0, 0]
    second = box_then_clicks(pred, np.array([40.0, 10, 78, 90]), [(60, 50)], [0])
    assert np.array_equal(_read(out / "chest_box1.png"), first)
    assert np.array_equal(_read(out / "chest_box2.png"), second)
    assert np.array_equal(_read(out / "chest.png"), first | second)


def test_points_go_to_the_smallest_containing_box_else_the_nearest():
    boxes = np.array([[0, 0, 100, 100], [10, 10, 40, 40], [60, 60, 90, 90]], float)
    owners = assign_points(boxes, np.array([[20, 20], [50, 50], [95, 95], [200, 200]], float))
    assert owners.tolist() == [1, 0, 0, 0]
    assert assign_points(boxes[1:], np.array([[45, 20], [95, 95], [50, 52]], float)).tolist() == [0, 1, 1]


@pytest.mark.parametrize("point", ["20,40,2", "20,40", "500,40,1", "nan,4,1"])
def test_bad_points_exit_2_and_write_nothing(model_dir, image_file, tmp_path, capsys, point):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        rc = main(["segment", str(image_file), "--point", point, "--model", str(model_dir), "-o", str(out)])
        raise SystemExit(rc)
    assert exit_info.value.code == 2
    assert not out.exists() or not any(out.iterdir())


def test_eval_clicks_writes_the_dice_after_each_click(model_dir, cxr_dir, tmp_path, capsys):
    data = tmp_path / "data"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    for name in sorted(p.name for p in (cxr_dir / "images").iterdir())[:2]:
        shutil.copy(cxr_dir / "images" / name, data / "images" / name)
        shutil.copy(cxr_dir / "masks" / name, data / "masks" / name)
    out = tmp_path / "clicks.json"
    assert main(["eval", "--model", str(model_dir), "--data", str(data), "--clicks", "3", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["n"] == 2 and len(summary["mean_dice"]) == 4 and len(summary["worse"]) == 3
    assert all(len(r["dice"]) == 4 for r in summary["rows"])
    assert "worse after click 1" in capsys.readouterr().out
