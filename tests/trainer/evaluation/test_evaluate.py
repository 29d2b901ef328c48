"""evaluate_model on real validation pairs: rows, skips, files, and an oracle predictor."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import trainer.evaluation.evaluate as evaluate_mod
from engine.errors import LungSamError
from engine.models import save_sam_folder
from engine.spacing import PixelSpacing
from tests.conftest import synthetic_cxr
from tests.trainer.conftest import copy_pairs
from trainer.data import split_lungs
from trainer.evaluation import EvalResult, evaluate_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def val4(cxr_dir, tmp_path) -> Path:
    """Four real validation pairs copied to a temporary folder."""
    return copy_pairs(cxr_dir, tmp_path / "val4", 4)


@pytest.fixture
def model_dir(tiny_sam, tmp_path) -> Path:
    sam, config = tiny_sam
    return save_sam_folder(tmp_path / "tiny-model", sam, config)


def _add_non_square_pair(root: Path) -> tuple[int, int]:
    """A 96 x 80 synthetic pair, so a transposed or resized mask cannot score 1."""
    image = synthetic_cxr(96, 80, seed=3)
    mask = np.zeros((96, 80), np.uint8)
    mask[20:76, 10:35] = 255
    mask[22:80, 45:72] = 255
    Image.fromarray(image).save(root / "images" / "wide (1).png")
    Image.fromarray(mask).save(root / "masks" / "wide (1).png")
    return 96, 80


def test_every_pair_gets_a_row_with_scores_in_range(val4, model_dir):
    result = evaluate_model(str(model_dir), val4, device="cpu")
    assert len(result.rows) == 4 and result.summary["n"] == 4
    assert result.summary["n_skipped"] == 0
    for row in result.rows:
        assert (row["height"], row["width"]) == (256, 256)
        for key in ("dice", "iou", "precision", "recall"):
            assert 0.0 <= row[key] <= 1.0
        assert row["hd95"] >= 0 and row["hd95_unit"] == "px"
        assert row["seconds"] > 0
    dice = [r["dice"] for r in result.rows]
    assert result.summary["metrics"]["dice"]["mean"] == pytest.approx(np.mean(dice))
    assert result.summary["metrics"]["dice"]["median"] == pytest.approx(np.median(dice))
    assert result.summary["model"]["name"] == "tiny-model"
    assert set(result.summary["timing"]) >= {"load", "embed", "decode", "metrics"}


def test_unreadable_and_bad_pairs_are_skipped_counted_and_named(val4, model_dir, caplog):
    (val4 / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    shutil.copy(next((val4 / "masks").iterdir()), val4 / "masks" / "broken.png")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(val4 / "images" / "small.png")
    shutil.copy(next((val4 / "masks").iterdir()), val4 / "masks" / "small.png")  # 256 vs 40
    Image.fromarray(np.full((40, 40), 90, np.uint8)).save(val4 / "images" / "blank.png")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(val4 / "masks" / "blank.png")
    with caplog.at_level(logging.WARNING, logger="trainer.evaluation.evaluate"):
        result = evaluate_model(str(model_dir), val4, device="cpu")
    assert len(result.rows) == 4
    assert result.summary["n_skipped"] == 3
    reasons = {s["name"]: s["reason"] for s in result.summary["skipped"]}
    assert set(reasons) == {"broken", "small", "blank"}
    assert "corrupt" in reasons["broken"] and "empty" in reasons["blank"]
    assert "256x256" in reasons["small"]
    assert "broken.png" in caplog.text


def test_results_are_written_and_read_back(val4, model_dir, tmp_path):
    result = evaluate_model(str(model_dir), val4, prompt="per-lung", device="cpu")
    result.rows[0]["hd95"] = math.nan  # what a missed lung looks like
    json_path = result.to_json(tmp_path / "out" / "eval.json")
    csv_path = result.to_csv(tmp_path / "out" / "eval.csv")
    data = json.loads(json_path.read_text())  # strict JSON: NaN became null
    assert data["rows"][0]["hd95"] is None and data["summary"]["prompt"] == "per-lung"
    back = EvalResult.from_json(json_path)
    assert math.isnan(back.rows[0]["hd95"])
    assert back.rows[1]["dice"] == pytest.approx(result.rows[1]["dice"])
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == [r["name"] for r in result.rows]
    assert math.isnan(float(rows[0]["hd95"]))
    assert float(rows[2]["dice_lung_mean"]) == pytest.approx(result.rows[2]["dice_lung_mean"])


def test_per_lung_prompt_scores_each_lung(val4, model_dir):
    result = evaluate_model(str(model_dir), val4, prompt="per-lung", device="cpu")
    for row in result.rows:
        left, right = row["dice_image_left"], row["dice_image_right"]
        assert row["dice_lung_mean"] == pytest.approx((left + right) / 2)
    assert "dice_lung_mean" in result.summary["metrics"]


class OraclePredictor:
    """Stands in for engine.predict.predictor.Predictor and returns the ground truth it was told.

    It also checks that the prompts are the tight, unjittered boxes of the ground truth.
    """

    truth: dict[bytes, np.ndarray] = {}
    calls: list[int] = []

    def __init__(self, model, device=None, cache=None) -> None:
        self.current: np.ndarray | None = None

    def set_image(self, pixels: np.ndarray) -> None:
        self.current = self.truth[np.ascontiguousarray(pixels).tobytes()]

    def predict(self, boxes, style=None) -> SimpleNamespace:
        union = self.current
        boxes = np.asarray(boxes)
        self.calls.append(len(boxes))
        targets = [union] if len(boxes) == 1 else [split_lungs(union) == k for k in (1, 2)]
        for box, target in zip(boxes, targets, strict=True):
            rows, cols = np.nonzero(target)
            assert list(box) == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        return SimpleNamespace(masks=np.stack(targets)[:, None])


@pytest.mark.parametrize("prompt, boxes", [("union", 1), ("per-lung", 2)])
def test_oracle_predictor_scores_perfectly_at_original_resolution(
    val4, model_dir, monkeypatch, prompt, boxes
):
    shape = _add_non_square_pair(val4)
    truth = {}
    for image in (val4 / "images").iterdir():
        pixels = np.ascontiguousarray(np.array(Image.open(image)))
        truth[pixels.tobytes()] = np.array(Image.open(val4 / "masks" / image.name)) > 127
    monkeypatch.setattr(OraclePredictor, "truth", truth)
    monkeypatch.setattr(OraclePredictor, "calls", [])
    monkeypatch.setattr(evaluate_mod, "Predictor", OraclePredictor)
    result = evaluate_model(str(model_dir), val4, prompt=prompt, device="cpu")
    assert len(result.rows) == 5 and OraclePredictor.calls == [boxes] * 5
    wide = next(r for r in result.rows if r["name"] == "wide (1)")
    assert (wide["height"], wide["width"]) == shape
    for row in result.rows:
        assert row["dice"] == 1.0 and row["iou"] == 1.0 and row["hd95"] == 0.0
        if prompt == "per-lung":
            assert row["dice_image_left"] == row["dice_image_right"] == 1.0


def test_hd95_is_in_mm_when_the_image_has_a_pixel_spacing(model_dir, tmp_path, monkeypatch):
    root = tmp_path / "wide"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    _add_non_square_pair(root)
    mask = np.array(Image.open(root / "masks" / "wide (1).png")) > 127

    class ShiftedPredictor(OraclePredictor):
        def set_image(self, pixels):
            pass

        def predict(self, boxes, style=None):
            return SimpleNamespace(masks=np.roll(mask, 4, axis=1)[None, None])

    real_load = evaluate_mod.load_image

    def load_with_spacing(path):
        image = real_load(path)
        if Path(path).parent.name == "images":  # like a DICOM with PixelSpacing 0.5\0.25
            image = dataclasses.replace(image, spacing=PixelSpacing(0.5, 0.25, "calibrated"))
        return image

    monkeypatch.setattr(evaluate_mod, "load_image", load_with_spacing)
    monkeypatch.setattr(evaluate_mod, "Predictor", ShiftedPredictor)
    result = evaluate_model(str(model_dir), root, device="cpu")
    row = result.rows[0]
    assert row["hd95_unit"] == "mm" and result.summary["hd95_unit"] == "mm"
    assert row["hd95"] == pytest.approx(4 * 0.25)


def test_exclude_and_limit_choose_the_pairs(val4, model_dir):
    names = sorted(p.stem for p in (val4 / "images").iterdir())
    result = evaluate_model(str(model_dir), val4, exclude=[names[0] + ".png"], limit=2, device="cpu")
    assert [r["name"] for r in result.rows] == names[1:3]


def test_bad_requests_are_user_errors(val4, model_dir, tmp_path):
    with pytest.raises(LungSamError, match="data folder not found"):
        evaluate_model(str(model_dir), tmp_path / "nowhere")
    with pytest.raises(LungSamError, match="unknown prompt"):
        evaluate_model(str(model_dir), val4, prompt="points")


# ----------------------------------------------------------------------------- CLI


def test_cli_eval_prints_the_table_and_writes_json_and_csv(val4, model_dir, tmp_path, capsys):
    from app.cli import main

    exclude = tmp_path / "overlap.csv"
    first = sorted(p.name for p in (val4 / "images").iterdir())[0]
    exclude.write_text(f"file,reason\n{first},overlap\n")
    out_json, out_csv = tmp_path / "e.json", tmp_path / "e.csv"
    rc = main(["eval", "--model", str(model_dir), "--data", str(val4), "--prompt", "per-lung",
               "--exclude", str(exclude), "--json", str(out_json), "--csv", str(out_csv),
               "--device", "cpu"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "dice_lung_mean" in text and "images: 3, skipped: 0" in text
    data = json.loads(out_json.read_text())
    assert data["summary"]["n"] == 3 and first.rsplit(".", 1)[0] not in {
        r["name"] for r in data["rows"]}
    assert len(out_csv.read_text().strip().splitlines()) == 4


def test_cli_missing_data_folder_exits_2_with_one_line(model_dir, tmp_path, capsys):
    from app.cli import main

    rc = main(["eval", "--model", str(model_dir), "--data", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().count("\n") == 0 and "data folder not found" in err


def test_cli_compare_of_a_model_with_itself_finds_no_difference(val4, model_dir, tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "cmp.json"
    rc = main(["compare", "--a", str(model_dir), "--b", str(model_dir), "--data", str(val4),
               "--limit", "3", "--json", str(out), "--device", "cpu"])
    assert rc == 0
    assert "all differences are zero" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["comparison"]["metrics"]["dice"]["p_wilcoxon"] == 1.0
    assert data["comparison"]["n_pairs"] == 3 and len(data["a"]["rows"]) == 3


def test_cli_eval_never_imports_qt(val4, model_dir):
    import os
    import subprocess
    import sys

    code = (
        "import sys; from app.cli import main; "
        f"rc = main(['eval', '--model', {str(model_dir)!r}, '--data', {str(val4)!r}, "
        "'--limit', '1', '--device', 'cpu']); "
        "assert rc == 0; assert not any(m.startswith('PySide6') for m in sys.modules), 'Qt'"
    )
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr


def test_cli_eval_scores_the_asked_mask_style(val4, styled_tiny_sam, tmp_path, capsys):
    from app.cli import main
    from engine.models import save_sam_folder

    folder = save_sam_folder(tmp_path / "styled", *styled_tiny_sam)
    means = {}
    for style in ("visible", "anatomical"):
        out = tmp_path / f"{style}.json"
        assert main(["eval", "--model", str(folder), "--data", str(val4), "--style", style,
                     "--json", str(out), "--device", "cpu"]) == 0
        summary = json.loads(out.read_text())["summary"]
        assert summary["style"] == style
        means[style] = summary["metrics"]["dice"]["mean"]
    assert means["visible"] != means["anatomical"]
    capsys.readouterr()
    assert main(["eval", "--model", str(folder), "--data", str(val4), "--style", "wide"]) == 2
    assert "unknown mask style 'wide'" in capsys.readouterr().err


def test_a_pair_drawn_per_lung_only_is_scored_against_the_union_of_its_lungs(tmp_path):
    """Annotation projects may hold per-lung masks and no both-lungs mask."""
    from trainer.data import Pair
    from trainer.evaluation import load_ground_truth

    image = synthetic_cxr(96, 80, seed=5)
    right = np.zeros((96, 80), np.uint8)
    right[20:76, 8:34] = 255  # the patient's right lung: image left
    left = np.zeros((96, 80), np.uint8)
    left[20:76, 46:72] = 255
    paths = {}
    for name, pixels in (("img", image), ("left", left), ("right", right)):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(pixels).save(paths[name])
    both = load_ground_truth(Pair("case", paths["img"], None, paths["left"], paths["right"]))
    assert np.array_equal(both.union, (left > 0) | (right > 0))
    assert np.array_equal(both.left, left > 0) and np.array_equal(both.right, right > 0)
    one = load_ground_truth(Pair("case", paths["img"], None, paths["left"], None))
    assert np.array_equal(one.union, left > 0) and one.left is None and one.right is None
    Image.fromarray(np.zeros((96, 80), np.uint8)).save(paths["left"])
    with pytest.raises(LungSamError, match="no lung"):
        load_ground_truth(Pair("case", paths["img"], None, paths["left"], None))


def test_auto_prompt_scores_zero_click_with_the_shipped_model_on_real_pairs(cxr_dir, tmp_path):
    """No prompt from the ground truth: the shipped model's box head finds both lungs, each on
    its own side, and the quality score is in range."""
    pairs = copy_pairs(cxr_dir, tmp_path / "val8", 8)
    auto = evaluate_model(None, pairs, "auto", device="cpu")
    union = evaluate_model(None, pairs, "union", device="cpu")
    assert auto.summary["prompt"] == "auto" and auto.summary["n"] == 8
    assert all(r["lungs_swapped"] == 0.0 for r in auto.rows)
    assert all(0.0 < r["quality"] <= 1.0 for r in auto.rows)
    assert auto.summary["metrics"]["dice_lung_mean"]["mean"] > 0.9
    gap = union.summary["metrics"]["dice"]["mean"] - auto.summary["metrics"]["dice"]["mean"]
    assert gap < 0.02, gap
