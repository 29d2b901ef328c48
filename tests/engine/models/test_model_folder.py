"""Our model folder format: round trip, integrity checks, registry lookup by name."""

from __future__ import annotations

import json

import pytest
import torch

from engine.errors import ModelLoadError
from engine.models import (
    default_model_name,
    list_models,
    load_model,
    load_model_folder,
    save_sam_folder,
)


def _outputs(sam, size):
    torch.manual_seed(3)
    with torch.no_grad():
        return sam.image_encoder(torch.randn(1, 3, size, size))


def test_round_trip_keeps_weights_and_outputs(tiny_sam, tmp_path):
    sam, config = tiny_sam
    folder = save_sam_folder(tmp_path / "m", sam, config, extra_meta={"metrics": {"dice": 0.5}})
    loaded = load_model_folder(folder)
    assert loaded.config == config
    assert loaded.meta["metrics"]["dice"] == 0.5
    assert torch.equal(_outputs(sam, config.img_size), _outputs(loaded.sam, config.img_size))


def test_fp16_storage_halves_the_file_and_stays_close(tiny_sam, tmp_path):
    sam, config = tiny_sam
    full = save_sam_folder(tmp_path / "fp32", sam, config)
    half = save_sam_folder(tmp_path / "fp16", sam, config, storage_dtype="float16")
    size = lambda p: (p / "weights.safetensors").stat().st_size  # noqa: E731
    assert size(half) < 0.55 * size(full)
    a, b = _outputs(sam, config.img_size), _outputs(load_model_folder(half).sam, config.img_size)
    assert torch.allclose(a, b, atol=5e-3, rtol=1e-2)


def test_model_hash_changes_with_weights(tiny_sam, tmp_path):
    sam, config = tiny_sam
    first = load_model_folder(save_sam_folder(tmp_path / "a", sam, config))
    with torch.no_grad():
        sam.mask_decoder.iou_token.weight.add_(1.0)
    second = load_model_folder(save_sam_folder(tmp_path / "b", sam, config))
    assert first.model_hash != second.model_hash


def test_swapped_weight_file_is_detected(tiny_sam, tmp_path):
    sam, config = tiny_sam
    folder = save_sam_folder(tmp_path / "m", sam, config)
    with torch.no_grad():
        sam.mask_decoder.iou_token.weight.add_(1.0)
    other = save_sam_folder(tmp_path / "other", sam, config)
    (folder / "weights.safetensors").write_bytes((other / "weights.safetensors").read_bytes())
    with pytest.raises(ModelLoadError, match="does not match model.json"):
        load_model_folder(folder)


def test_truncated_safetensors_is_a_clear_error(tiny_sam, tmp_path):
    sam, config = tiny_sam
    folder = save_sam_folder(tmp_path / "m", sam, config)
    meta = json.loads((folder / "model.json").read_text())
    meta["weights"].pop("sha256")
    (folder / "model.json").write_text(json.dumps(meta))
    weights = folder / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        load_model_folder(folder)


def test_folder_without_model_json_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="not a model folder"):
        load_model_folder(tmp_path)


def test_registry_lists_complete_folders_and_loads_by_name(tiny_sam, tmp_path, monkeypatch):
    sam, config = tiny_sam
    monkeypatch.setenv("LUNGSAM_RESOURCES", str(tmp_path / "res"))
    monkeypatch.setenv("LUNGSAM_MODELS", str(tmp_path / "user"))
    models = tmp_path / "res" / "models"
    save_sam_folder(models / "shipped-one", sam, config)
    (models / ".half.partial-1234").mkdir(parents=True)
    broken = models / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{not json")
    assert [e.name for e in list_models()] == ["shipped-one"]
    assert default_model_name() is None
    with pytest.raises(ModelLoadError, match="no default model"):
        load_model(None)
    (models / "DEFAULT").write_text("shipped-one\n")
    assert load_model(None).config == config
    assert load_model("shipped-one").config == config
    with pytest.raises(ModelLoadError, match="not found"):
        load_model("no-such-model")
