"""The box head beside a model's weights: saved, found again, and never a reason to refuse a model."""

from __future__ import annotations

import json

import torch

from engine.models import BOX_HEAD_FILE, load_model_folder, save_box_head, save_sam_folder
from engine.sam import BOX_KINDS, BoxHead


def _folder(tmp_path, tiny_sam):
    sam, config = tiny_sam
    return save_sam_folder(tmp_path / "m", sam, config)


def _head(tiny_sam) -> BoxHead:
    _, config = tiny_sam
    torch.manual_seed(1)
    return BoxHead(in_channels=config.prompt_embed_dim, grid=config.img_size // config.patch_size, width=8, hidden=16)


def test_saved_head_loads_with_the_model_and_gives_the_same_boxes(tmp_path, tiny_sam):
    folder = _folder(tmp_path, tiny_sam)
    before = load_model_folder(folder)
    head = _head(tiny_sam)
    save_box_head(folder, head, {"trained_on": "x"})
    loaded = load_model_folder(folder)
    assert loaded.box_head is not None and loaded.box_head_problem is None
    assert loaded.model_hash == before.model_hash  # embeddings caches stay valid
    x = torch.randn(2, head.in_channels, head.grid, head.grid)
    assert torch.equal(loaded.box_head(x), head.eval()(x))
    assert json.loads((folder / "model.json").read_text())["box_head"]["provenance"] == {"trained_on": "x"}


def test_boxes_are_ordered_corners_in_unit_frame(tiny_sam):
    head = _head(tiny_sam).eval()
    boxes = head(torch.randn(5, head.in_channels, head.grid, head.grid) * 10)
    assert boxes.shape == (5, len(BOX_KINDS), 4)
    assert (boxes >= 0).all() and (boxes <= 1).all()
    assert (boxes[..., 2] >= boxes[..., 0]).all() and (boxes[..., 3] >= boxes[..., 1]).all()


def test_a_model_without_head_has_none(tmp_path, tiny_sam):
    loaded = load_model_folder(_folder(tmp_path, tiny_sam))
    assert loaded.box_head is None and loaded.box_head_problem is None


def test_damaged_head_falls_back_and_says_why(tmp_path, tiny_sam):
    folder = _folder(tmp_path, tiny_sam)
    save_box_head(folder, _head(tiny_sam))
    path = folder / BOX_HEAD_FILE
    path.write_bytes(path.read_bytes()[:-10])
    loaded = load_model_folder(folder)
    assert loaded.box_head is None
    assert "sha256" in loaded.box_head_problem and "whole image" in loaded.box_head_problem
    path.unlink()
    assert "missing" in load_model_folder(folder).box_head_problem


def test_hostile_architecture_is_refused_without_building_it(tmp_path, tiny_sam):
    folder = _folder(tmp_path, tiny_sam)
    save_box_head(folder, _head(tiny_sam))
    meta = json.loads((folder / "model.json").read_text())
    meta["box_head"]["arch"]["width"] = 10**9
    (folder / "model.json").write_text(json.dumps(meta))
    loaded = load_model_folder(folder)
    assert loaded.box_head is None and "1..4096" in loaded.box_head_problem
