"""Training a second mask style (annotation convention) next to the first."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.errors import TrainingError
from engine.models import load_model
from engine.predict import Predictor
from engine.sam import mask_styles, set_mask_styles
from trainer.data import (
    apply_style_names,
    find_pairs,
    load_set,
    parse_style_source,
    style_sets,
    token_of,
)
from trainer.evaluation import evaluate_model
from trainer.training import TrainRequest, evaluate_set, run_stage, settings_for


def dilated_copy(src: Path, dst: Path, px: int) -> Path:
    """The same images with every lung mask grown by ``px`` pixels: a 'wider' convention."""
    (dst / "images").mkdir(parents=True)
    (dst / "masks").mkdir()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    for image in sorted((src / "images").iterdir()):
        (dst / "images" / image.name).write_bytes(image.read_bytes())
        mask = cv2.imread(str(src / "masks" / image.name), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(dst / "masks" / image.name), cv2.dilate(mask, kernel))
    return dst


def test_parse_and_name_styles(tiny_sam):
    sam, _ = tiny_sam
    assert parse_style_source("anatomical=/data/site") == ("anatomical", Path("/data/site"))
    for bad in ("anatomical", "=x", "a="):
        with pytest.raises(TrainingError, match="NAME=FOLDER"):
            parse_style_source(bad)
    assert apply_style_names(sam, [], "stage1") == ["default"]
    assert apply_style_names(sam, ["visible", "anatomical"], "stage1") == ["visible", "anatomical"]
    assert apply_style_names(sam, ["visible", "anatomical"], "stage2") == ["visible", "anatomical"]
    with pytest.raises(TrainingError, match="must start with the model's styles: visible,anatomical"):
        apply_style_names(sam, ["anatomical", "visible"], "stage1")
    with pytest.raises(TrainingError, match="Stage 1"):
        apply_style_names(sam, ["visible", "anatomical", "third"], "stage2")
    assert token_of(mask_styles(sam), "anatomical") == 1
    with pytest.raises(TrainingError, match="not one of the model's styles"):
        token_of(mask_styles(sam), "other")


def test_style_sets_hold_back_a_fifth_and_repeat(small_set):
    load = lambda pairs: load_set(pairs, 64)  # noqa: E731
    train, val = style_sets([("b", small_set)], [], ["a", "b"], find_pairs, load, repeat=3, seed=0)
    assert len(train) == 1 and len(val) == 1
    assert len(val[0]) == 2 and len(train[0]) == 3 * 6
    assert set(train[0].styles) == {1} and set(val[0].styles) == {1}
    assert not set(train[0].names) & set(val[0].names)


def test_validation_reports_each_style(tiny_sam, small_set):
    sam, config = tiny_sam
    set_mask_styles(sam, ["a", "b"])
    data = load_set(find_pairs(small_set), config.img_size)
    mixed = data.subset(range(8))
    mixed.styles[4:] = 1
    metrics = evaluate_set(sam, config, mixed)
    assert set(metrics) == {"val_dice", "val_dice_per_lung", "val_dice_style1", "val_dice_per_lung_style1", "val_score"}
    scores = [np.nanmean([metrics["val_dice"], metrics["val_dice_per_lung"]]),
              np.nanmean([metrics["val_dice_style1"], metrics["val_dice_per_lung_style1"]])]
    assert metrics["val_score"] == pytest.approx(np.mean(scores))


def test_stage1_learns_a_second_convention_without_losing_the_first(small_set, tmp_path, one_torch_thread):
    """Style 1 is trained on masks grown by 10 px: its masks must grow, style 0's must not."""
    wide = dilated_copy(small_set, tmp_path / "wide", 10)
    base = load_model("lungsam-compact-base")
    run_stage(TrainRequest(
        stage="stage1", data=small_set, val=small_set, out=tmp_path / "s1", model=base.source,
        settings=settings_for("stage1", epochs=4, batch_size=4, decoder_lr=1e-3), threads=1, progress=False,
        styles=[*mask_styles(base.sam), "wide"], style_data=[("wide", wide)], style_val=[("wide", wide)],
        style_repeat=4, interactive=False,
    ))  # the shipped base already draws visible and anatomical: "wide" is its next style; box
    # prompts only, as this test always trained (interactive Stage 1 on 8 images at decoder lr
    # 1e-3 costs the visible style ~2 points: see the session note)
    trained = load_model(tmp_path / "s1" / "best")
    assert mask_styles(trained.sam) == [*mask_styles(base.sam), "wide"]
    before = evaluate_model(base, wide, device="cpu").summary["metrics"]["dice"]["mean"]
    after_wide = evaluate_model(trained, wide, device="cpu", style="wide").summary["metrics"]["dice"]["mean"]
    after_visible = evaluate_model(trained, small_set, device="cpu").summary["metrics"]["dice"]["mean"]
    base_visible = evaluate_model(base, small_set, device="cpu").summary["metrics"]["dice"]["mean"]
    assert after_wide > before + 0.02, (before, after_wide)
    assert after_visible > base_visible - 0.02, (base_visible, after_visible)
    predictor = Predictor(trained, device="cpu")
    image = cv2.imread(str(sorted((small_set / "images").iterdir())[0]), cv2.IMREAD_GRAYSCALE)
    predictor.set_image(image)
    box = np.array([10, 10, 246, 246])
    area = {s: predictor.predict(boxes=box, style=s).masks.sum() for s in ("visible", "wide")}
    assert area["wide"] > area["visible"], area
    torch.set_num_threads(1)
