"""Hostile prompts through `lungsam segment` and the engine: each is either a clear error (exit
status 2, exactly one line on stderr, nothing written) or, where the policy says so, clipped.

Policy (engine/predict/prompts.py): a box that sticks out of the image is clipped to it, whatever its
size; a box entirely outside, with x1 <= x0 or y1 <= y0, with NaN/infinite coordinates or of
the wrong shape, more than 64 boxes or points, an empty point list and points outside the image
are errors.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli import main
from engine.errors import PromptError
from engine.models import load_model
from engine.predict import MAX_PROMPTS, Predictor
from tests.conftest import synthetic_cxr

HEIGHT, WIDTH = 96, 80


@pytest.fixture
def image_file(tmp_path) -> Path:
    path = tmp_path / "chest.png"
    Image.fromarray(synthetic_cxr(HEIGHT, WIDTH)).save(path)
    return path


def segment(args: list[str], model_dir: Path, out: Path, capsys) -> tuple[int, list[str]]:
    rc = main(["segment", *args, "--model", str(model_dir), "--device", "cpu", "-o", str(out)])
    return rc, capsys.readouterr().err.strip().splitlines()


def engine_union(model_dir: Path, image_file: Path, boxes: list[list[float]]) -> np.ndarray:
    predictor = Predictor(load_model(model_dir), device="cpu")
    predictor.set_image(np.array(Image.open(image_file)))
    return predictor.predict(boxes=boxes).masks[:, 0].any(axis=0)


# ----------------------------------------------------------------------------- --box: errors

BAD_BOXES = [
    ("nan", ["nan,10,50,60"], "must be finite numbers"),
    ("inf", ["inf,10,50,60"], "must be finite numbers"),
    ("overflow-to-inf", ["0,0,1e400,50"], "must be finite numbers"),
    ("negative-width", ["50,10,20,60"], "need x1 > x0 and y1 > y0"),
    ("negative-height", ["10,60,50,20"], "need x1 > x0 and y1 > y0"),
    ("zero-area", ["20,10,20,60"], "need x1 > x0 and y1 > y0"),
    ("entirely-right", ["200,10,300,60"], "lies outside the 80x96 image"),
    ("entirely-above", ["10,-60,50,-10"], "lies outside the 80x96 image"),
    ("touching-edge-only", ["80,10,120,60"], "lies outside the 80x96 image"),
    ("absurd-outside", ["1e12,1e12,2e12,2e12"], "lies outside the 80x96 image"),
    ("second-box-bad", ["5,5,40,40", "nan,0,1,1"], "must be finite numbers"),
    ("too-many", ["5,5,40,40"] * (MAX_PROMPTS + 1), f"too many boxes ({MAX_PROMPTS + 1}; at most {MAX_PROMPTS})"),
]


@pytest.mark.parametrize(("boxes", "message"), [c[1:] for c in BAD_BOXES], ids=[c[0] for c in BAD_BOXES])
def test_bad_box_exits_2_with_one_line_and_writes_nothing(model_dir, image_file, tmp_path, capsys, boxes, message):
    out = tmp_path / "out"
    args = [str(image_file)]
    for box in boxes:
        args += ["--box", box]
    rc, err = segment(args, model_dir, out, capsys)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("lungsam: error: chest.png: ") and message in err[0]
    assert not out.exists() or not any(out.iterdir())


# ----------------------------------------------------------------------------- --box: clipped


CLIPPED = [
    ("left-top-outside", "-10,-10,40,50", [0, 0, 40, 50]),
    ("right-bottom-outside", "30,40,120,200", [30, 40, WIDTH, HEIGHT]),
    ("absurd-size", "-1e12,-1e12,1e12,1e12", [0, 0, WIDTH, HEIGHT]),
    ("whole-image", f"0,0,{WIDTH},{HEIGHT}", [0, 0, WIDTH, HEIGHT]),
]


@pytest.mark.parametrize(("box", "clipped"), [c[1:] for c in CLIPPED], ids=[c[0] for c in CLIPPED])
def test_box_sticking_out_is_clipped_to_the_image(model_dir, image_file, tmp_path, capsys, box, clipped):
    """(A box starting with a minus sign is written ``--box=-10,...``, as argparse requires.)"""
    out = tmp_path / "out"
    rc, err = segment([str(image_file), f"--box={box}"], model_dir, out, capsys)
    assert rc == 0 and err == []
    mask = np.array(Image.open(out / "chest.png")) > 0
    assert mask.shape == (HEIGHT, WIDTH)
    assert np.array_equal(mask, engine_union(model_dir, image_file, [clipped]))


def test_sixty_four_boxes_are_accepted(model_dir, image_file, tmp_path, capsys):
    out = tmp_path / "out"
    args = [str(image_file)]
    for i in range(MAX_PROMPTS):
        args += ["--box", f"{i % 10},{i % 7},{40 + i % 30},{50 + i % 40}"]
    rc, err = segment(args, model_dir, out, capsys)
    assert rc == 0 and err == []
    assert len(list(out.glob("chest_box*.png"))) == MAX_PROMPTS


# ----------------------------------------------------------------------------- argparse level


@pytest.mark.parametrize("box", ["1,2,3", "1,2,3,4,5", "a,b,c,d", ""], ids=["three", "five", "letters", "empty"])
def test_box_that_is_not_four_numbers_is_a_usage_error(model_dir, image_file, tmp_path, capsys, box):
    """argparse refuses it (exit 2): its usage line, then one error line naming the box."""
    with pytest.raises(SystemExit) as info:
        main(["segment", str(image_file), "--box", box, "--model", str(model_dir), "-o", str(tmp_path / "o")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage: lungsam segment")
    assert f"argument --box: box '{box}' must be four numbers X0,Y0,X1,Y1" in err[-1]
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- --prompts JSON

BAD_PROMPTS = [
    ("not-json", "{not json", "cannot read the prompts file"),
    ("list-not-object", "[[1, 2, 3, 4]]", "expected an object mapping image paths to lists of boxes"),
    ("boxes-not-list", '{"chest.png": "5,5,40,40"}', "box must be four numbers"),
    ("three-numbers", '{"chest.png": [[1, 2, 3]]}', "boxes must have shape (N, 4), got (1, 3)"),
    ("no-boxes", '{"chest.png": []}', "boxes must have shape (N, 4)"),
    ("nested-too-deep", '{"chest.png": [[[1, 2, 3, 4]]]}', "boxes must have shape (N, 4)"),
    ("null-coordinate", '{"chest.png": [[null, 2, 30, 40]]}', "must be finite numbers"),
    ("text-coordinate", '{"chest.png": [["left", 2, 30, 40]]}', "box must be four numbers"),
    ("object-as-box", '{"chest.png": {"x0": 1}}', "box must be four numbers"),
    ("boolean-as-box", '{"chest.png": true}', "boxes must have shape (N, 4)"),
    ("nan-literal", '{"chest.png": [[NaN, 2, 30, 40]]}', "must be finite numbers"),
    ("huge-exponent", '{"chest.png": [[0, 0, 1e999, 40]]}', "must be finite numbers"),
    ("too-many", json.dumps({"chest.png": [[5, 5, 40, 40]] * (MAX_PROMPTS + 1)}), "too many boxes"),
    ("missing-image", '{"nope.png": [[5, 5, 40, 40]]}', "nope.png: file not found"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in BAD_PROMPTS], ids=[c[0] for c in BAD_PROMPTS])
def test_bad_prompts_file_exits_2_with_one_line(model_dir, image_file, tmp_path, capsys, text, message):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(text)
    out = tmp_path / "out"
    rc, err = segment(["--prompts", str(prompts)], model_dir, out, capsys)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("lungsam: error: ") and message in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_prompts_file_box_sticking_out_is_clipped(model_dir, image_file, tmp_path, capsys):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"chest.png": [[-5, -5, 1e6, 50]]}))
    rc, err = segment(["--prompts", str(prompts)], model_dir, tmp_path / "out", capsys)
    assert rc == 0 and err == []
    mask = np.array(Image.open(tmp_path / "out" / "chest.png")) > 0
    assert np.array_equal(mask, engine_union(model_dir, image_file, [[0, 0, WIDTH, 50]]))


def test_no_image_and_no_box_exit_2(model_dir, image_file, tmp_path, capsys):
    rc, err = segment([], model_dir, tmp_path / "out", capsys)
    assert rc == 2 and err == ["lungsam: error: no image given"]
    rc, err = segment([str(image_file)], model_dir, tmp_path / "out", capsys)
    assert rc == 2 and len(err) == 1 and "give at least one --box" in err[0]


# ----------------------------------------------------------------------------- points (engine)

BAD_POINTS = [
    ("empty-list", [], [], "the point list is empty"),
    ("empty-array", np.zeros((0, 2)), np.zeros(0), "the point list is empty"),
    ("nan", [[np.nan, 10]], [1], "must be finite numbers"),
    ("inf-label", [[10, 10]], [np.inf], "must be finite numbers"),
    ("outside", [[10, 200]], [1], "point 10,200 lies outside the 80x96 image"),
    ("negative", [[-1, 10]], [1], "lies outside"),
    ("absurd", [[1e12, 10]], [1], "lies outside"),
    ("label-not-0-or-1", [[10, 10]], [2], "labels must be 1 (lung) or 0 (not lung)"),
    ("count-mismatch", [[10, 10], [20, 20]], [1], "2 points but 1 labels"),
    ("odd-coordinates", [1, 2, 3], [1], "points must be x,y"),
    ("text", [["a", "b"]], [1], "points must be x,y"),
    ("too-many", [[10, 10]] * (MAX_PROMPTS + 1), [1] * (MAX_PROMPTS + 1), "too many points"),
]


@pytest.fixture
def predictor(loaded_tiny) -> Predictor:
    predictor = Predictor(loaded_tiny, device="cpu")
    predictor.set_image(synthetic_cxr(HEIGHT, WIDTH))
    return predictor


@pytest.mark.parametrize(("points", "labels", "message"), [c[1:] for c in BAD_POINTS], ids=[c[0] for c in BAD_POINTS])
def test_bad_points_are_a_clear_prompt_error(predictor, points, labels, message):
    with pytest.raises(PromptError) as info:
        predictor.predict(points=points, point_labels=labels)
    assert message in str(info.value)


def test_points_without_labels_and_no_prompt_at_all_are_errors(predictor):
    with pytest.raises(PromptError, match="given together"):
        predictor.predict(points=[[10, 10]])
    with pytest.raises(PromptError, match="at least one box or one point"):
        predictor.predict()


def test_points_on_the_border_are_inside(predictor):
    pred = predictor.predict(points=[[0, 0], [WIDTH, HEIGHT]], point_labels=[1, 0])
    assert pred.masks.shape == (1, 1, HEIGHT, WIDTH)


def test_broken_model_folder_exits_2_with_one_line(model_dir, image_file, tmp_path, capsys):
    weights = model_dir / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    rc, err = segment([str(image_file), "--box", "5,5,40,40"], model_dir, tmp_path / "out", capsys)
    assert rc == 2 and len(err) == 1 and "does not match model.json" in err[0]


def _damaged_tiff() -> bytes:
    import io
    import struct

    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((24, 32), np.uint16))
    data = bytearray(buf.getvalue())
    data[12:14] = struct.pack("<H", 296)  # first IFD entry (ImageWidth): an invalid type
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("cut.png", lambda png: png[: len(png) // 2], "truncated or corrupt"),
        ("tag.tif", lambda png: _damaged_tiff(), "tag.tif: "),
        ("noise.dcm", lambda png: bytes(range(256)) * 4, "not a valid DICOM file"),
        ("empty.png", lambda png: b"", "the file is empty"),
    ],
    ids=["truncated-png", "damaged-tiff-tag", "noise-dcm", "empty"],
)
def test_corrupt_image_exits_2_with_one_line(model_dir, image_file, tmp_path, capsys, caplog, name, make, message):
    """Library diagnostics (tifffile logs each damaged tag) do not add lines to the one error."""
    bad = tmp_path / name
    bad.write_bytes(make(image_file.read_bytes()))
    rc, err = segment([str(bad), "--box", "5,5,40,40"], model_dir, tmp_path / "out", capsys)
    assert rc == 2 and len(err) == 1, err
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert err[0].startswith(f"lungsam: error: {name}: ") and message in err[0]
