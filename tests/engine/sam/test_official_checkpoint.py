"""Official SAM / MedSAM checkpoints: safe loading, type detection, import to our format."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from engine.errors import ModelLoadError
from engine.models import import_checkpoint, load_model, load_model_folder, load_official_checkpoint
from engine.sam import VIT_B, build_sam, infer_config, read_state_dict
from tests.sam_factory import tiny_config


def _write_official(path: Path, sam: torch.nn.Module) -> None:
    """Same layout as sam_vit_b_01ec64.pth: a plain dict of tensors saved by torch.save."""
    torch.save({k: v.clone() for k, v in sam.state_dict().items()}, path)


@pytest.fixture(scope="module")
def vit_b_checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    torch.manual_seed(0)
    sam = build_sam(VIT_B)
    path = tmp_path_factory.mktemp("ckpt") / "sam_vit_b_01ec64.pth"
    _write_official(path, sam)
    probe = {k: sam.state_dict()[k][..., :3].clone() for k in
             ("image_encoder.blocks.0.attn.qkv.weight", "mask_decoder.iou_token.weight")}
    return path, probe


def test_vit_b_checkpoint_has_official_keys_and_loads_both_ways(vit_b_checkpoint, tmp_path):
    path, probe = vit_b_checkpoint
    state = read_state_dict(path)
    assert len(state) == len(build_sam(VIT_B).state_dict())
    assert infer_config(state).name == "vit_b"
    direct = load_model(path, model_type="vit_b")
    assert direct.config == VIT_B
    for key, expected in probe.items():
        assert torch.equal(direct.sam.state_dict()[key][..., :3], expected)
    folder = import_checkpoint(path, tmp_path / "vit_b_imported", model_type="vit_b")
    via_folder = load_model_folder(folder)
    for key, expected in probe.items():
        assert torch.equal(via_folder.sam.state_dict()[key][..., :3], expected)
    assert via_folder.meta["provenance"]["imported_from"] == path.name


def test_medsam_type_uses_minmax_normalisation(vit_b_checkpoint):
    path, _ = vit_b_checkpoint
    loaded = load_official_checkpoint(path, model_type="medsam")
    assert loaded.config.normalization == "minmax"


def test_wrong_declared_type_is_refused(vit_b_checkpoint):
    path, _ = vit_b_checkpoint
    with pytest.raises(ModelLoadError, match="not a vit_l model"):
        load_official_checkpoint(path, model_type="vit_l")


def test_small_variant_config_is_inferred_from_shapes(tmp_path):
    config = tiny_config(img_size=128, encoder_depth=3, encoder_global_attn_indexes=(2,))
    sam = build_sam(config)
    path = tmp_path / "small.pth"
    _write_official(path, sam)
    inferred = infer_config(read_state_dict(path))
    for field in ("img_size", "encoder_embed_dim", "encoder_depth", "encoder_global_attn_indexes", "encoder_num_heads",
                  "encoder_window_size", "prompt_embed_dim"):
        assert getattr(inferred, field) == getattr(config, field), field


def test_truncated_checkpoint_gives_clear_error(tmp_path):
    config = tiny_config()
    path = tmp_path / "cut.pth"
    _write_official(path, build_sam(config))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        load_model(path)


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = _RunsCode()
    payload.marker = marker
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"image_encoder.pos_embed": payload}, handle)
    with pytest.raises(ModelLoadError, match="refused"):
        load_model(path)
    assert not marker.exists()


def test_non_sam_checkpoint_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ModelLoadError, match="not a SAM checkpoint"):
        load_model(path)


def test_wrapped_state_dict_is_unwrapped(tmp_path):
    sam = build_sam(tiny_config())
    path = tmp_path / "wrapped.pth"
    torch.save({"model": sam.state_dict(), "epoch": 3}, path)
    loaded = load_model(path)
    assert loaded.config.img_size == 64


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "nope.pth")
