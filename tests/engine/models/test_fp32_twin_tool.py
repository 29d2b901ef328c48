"""tools/ship_fp32_twin.py on a tiny Stage 2 folder: the twin is that model in FP32 (FP16 on
disk) beside its INT8 export, with the INT8 folder's box head, styles and Stage 2 selection,
and a Stage 2 folder that is not the INT8 model's source is refused."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from engine.adalora import AdaLoraConfig, wrap_adalora
from engine.models import (
    BOX_HEAD_FILE,
    export_int8,
    load_model_folder,
    save_box_head,
    save_sam_folder,
    sha256_file,
)
from engine.quant import insert_fake_quant
from engine.sam import BoxHead, set_mask_styles
from tools.ship_fp32_twin import build_twin


def stage2_folder(tmp_path, tiny_sam, name: str, seed: int):
    """A Stage 2 run's ``best``: adapters, fake-quant, two styles (saved as Stage 2 saves it)."""
    sam, config = copy.deepcopy(tiny_sam[0]), tiny_sam[1]
    torch.manual_seed(seed)
    for p in sam.parameters():
        p.data.add_(0.01 * torch.randn_like(p))
    set_mask_styles(sam, ["visible", "anatomical"])
    wrap_adalora(sam, AdaLoraConfig(r_max=4, target_rank=2, alpha=8.0))
    insert_fake_quant(sam)
    return save_sam_folder(tmp_path / name, sam, config), sam, config


def int8_folder(tmp_path, sam, config):
    folder = export_int8(sam, config, tmp_path / "int8", {"name": "tiny-int8"}, storage_dtype="float16")
    torch.manual_seed(3)
    head = BoxHead(in_channels=config.prompt_embed_dim, grid=config.img_size // config.patch_size, width=8, hidden=16)
    save_box_head(folder, head, {"trained_on": "x"})
    return folder


def test_twin_is_the_stage2_model_in_fp32_with_the_int8_folders_head(tmp_path, tiny_sam):
    stage2, sam, config = stage2_folder(tmp_path, tiny_sam, "stage2", seed=0)
    int8 = int8_folder(tmp_path, sam, config)
    twin_dir = build_twin(stage2, int8, tmp_path / "twin")
    twin = load_model_folder(twin_dir)
    meta = json.loads((twin_dir / "model.json").read_text())
    assert not twin.is_int8 and meta["adapter"] is None and meta["weights"]["storage_dtype"] == "float16"
    assert meta["twin"]["of"] == "tiny-int8"
    assert meta["twin"]["int8_weights_sha256"] == sha256_file(int8 / "weights.safetensors")
    assert meta["qat"]["layers"] == load_model_folder(int8).meta["int8"]["layers"]
    assert meta["mask_styles"] == ["visible", "anatomical"]
    assert sha256_file(twin_dir / BOX_HEAD_FILE) == sha256_file(int8 / BOX_HEAD_FILE)
    assert twin.box_head is not None
    card = (twin_dir / "README.md").read_text()  # rebuilding the folder must not lose its card
    assert card.startswith("# twin — the FP32 twin of tiny-int8") and "`visible`, `anatomical`" in card


def test_a_stage2_folder_that_is_not_the_int8_source_is_refused(tmp_path, tiny_sam):
    _, sam, config = stage2_folder(tmp_path, tiny_sam, "stage2", seed=0)
    int8 = int8_folder(tmp_path, sam, config)
    other, _, _ = stage2_folder(tmp_path, tiny_sam, "other", seed=1)
    with pytest.raises(SystemExit, match="was not exported from these Stage 2 weights"):
        build_twin(other, int8, tmp_path / "twin")
