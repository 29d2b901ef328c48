"""Model folders with adapters and/or INT8 layers round-trip through save/export and load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

from engine.adalora import (
    AdaLoraConfig,
    AdaLoraLinear,
    adalora_config_to_dict,
    adapter_modules,
    rank_pattern,
    wrap_adalora,
)
from engine.errors import ModelLoadError
from engine.models import (
    describe_structure,
    export_int8,
    load_model_folder,
    remember_adalora_config,
    save_sam_folder,
)
from engine.quant import (
    FakeQuantLinear,
    Int8ConvTranspose2d,
    Int8Linear,
    QuantSelection,
    convert_to_int8,
    insert_fake_quant,
    int8_layers,
    select_layers,
)
from engine.sam import SamConfig, build_sam, predict_boxes
from tests.sam_factory import tiny_config

ADAPTER = AdaLoraConfig(r_max=6, target_rank=3, alpha=12.0)
IMAGES = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(7))
BOXES = torch.tensor([[4.0, 6.0, 40.0, 58.0], [10.0, 0.0, 63.0, 50.0]])


def build(seed: int = 0, **overrides: object) -> tuple[nn.Module, SamConfig]:
    torch.manual_seed(seed)
    config = tiny_config(**overrides)
    return build_sam(config), config


def adapted(seed: int = 0) -> tuple[nn.Module, SamConfig]:
    """A tiny SAM with trained-looking adapters: non-zero Lambda, one pruned component each."""
    sam, config = build(seed)
    wrap_adalora(sam, ADAPTER)
    remember_adalora_config(sam, ADAPTER)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for i, m in enumerate(adapter_modules(sam).values()):
            m.lora_lambda.copy_(torch.randn(m.r_max, generator=g))
            mask = torch.ones(m.r_max)
            mask[i % m.r_max] = 0
            m.set_rank_mask(mask)
    return sam, config


def outputs(sam: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        features = sam.image_encoder(IMAGES)
        logits, _ = predict_boxes(sam, features, BOXES, torch.tensor([0, 1]), multimask_output=True)
    return features, logits


def dice(a: torch.Tensor, b: torch.Tensor) -> float:
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2 * int((a & b).sum()) / total


def file_dtypes(folder: Path) -> dict[str, torch.dtype]:
    with safe_open(str(folder / "weights.safetensors"), framework="pt") as handle:
        return {k: handle.get_tensor(k).dtype for k in handle.keys()}


def weights_bytes(folder: Path) -> int:
    return (folder / "weights.safetensors").stat().st_size


def test_plain_folder_records_no_structure(tmp_path: Path) -> None:
    sam, config = build()
    meta = json.loads((save_sam_folder(tmp_path / "m", sam, config) / "model.json").read_text())
    assert meta["adapter"] is None and meta["int8"] is None and meta["qat"] is None


def test_adapter_folder_round_trips_with_its_rank_pattern(tmp_path: Path) -> None:
    sam, config = adapted()
    loaded = load_model_folder(save_sam_folder(tmp_path / "m", sam, config))
    assert loaded.meta["adapter"]["config"] == adalora_config_to_dict(ADAPTER)
    assert rank_pattern(loaded.sam) == rank_pattern(sam)
    assert any(0 in mask for mask in rank_pattern(loaded.sam).values())
    assert isinstance(loaded.sam.image_encoder.blocks[0].attn.qkv, AdaLoraLinear)
    assert not loaded.is_int8
    for a, b in zip(outputs(sam), outputs(loaded.sam), strict=True):
        assert torch.equal(a, b)


def test_adapter_config_is_inferred_when_not_remembered(tmp_path: Path) -> None:
    sam, config = build()
    wrap_adalora(sam, AdaLoraConfig(r_max=4, target_rank=2, include_proj_mlp=True, alpha=8.0))
    adapter = describe_structure(sam)["adapter"]
    assert adapter["config"]["r_max"] == 4 and adapter["config"]["alpha"] == 8.0
    assert adapter["config"]["include_proj_mlp"] is True
    loaded = load_model_folder(save_sam_folder(tmp_path / "m", sam, config))
    assert list(adapter_modules(loaded.sam)) == list(adapter_modules(sam))


def test_export_stores_int8_weights_and_fp32_scales_for_selected_layers(tmp_path: Path) -> None:
    sam, config = build()
    folder = export_int8(sam, config, tmp_path / "int8")
    dtypes = file_dtypes(folder)
    layers = select_layers(sam)
    for name in layers:
        assert dtypes[f"{name}.weight_int8"] == torch.int8
        assert dtypes[f"{name}.weight_scale"] == torch.float32
        assert f"{name}.weight" not in dtypes
    assert dtypes["image_encoder.blocks.0.attn.qkv.weight"] == torch.float32
    assert dtypes["image_encoder.patch_embed.proj.weight"] == torch.float32
    meta = json.loads((folder / "model.json").read_text())
    assert meta["int8"]["layers"] == layers
    assert meta["int8"]["selection"] == QuantSelection().to_dict()
    assert meta["int8"]["scheme"]["weight"]["granularity"] == "per_tensor"
    assert meta["int8"]["scheme"]["linear_input"]["granularity"] == "per_token"


def test_export_with_fp16_storage_keeps_int8_layers_exact(tmp_path: Path) -> None:
    sam, config = build()
    dtypes = file_dtypes(export_int8(sam, config, tmp_path / "h", storage_dtype="float16"))
    assert dtypes["image_encoder.blocks.0.attn.qkv.weight"] == torch.float16
    assert dtypes["image_encoder.blocks.0.mlp.lin1.weight_scale"] == torch.float32
    assert dtypes["image_encoder.blocks.0.mlp.lin1.bias"] == torch.float32


def test_int8_folder_is_much_smaller_when_most_weights_are_selected(tmp_path: Path) -> None:
    sam, config = build(prompt_embed_dim=64, decoder_mlp_dim=512, iou_head_hidden_dim=64)
    fp32 = save_sam_folder(tmp_path / "fp32", sam, config)
    int8 = export_int8(sam, config, tmp_path / "int8")
    assert weights_bytes(fp32) / weights_bytes(int8) >= 2.5
    meta = json.loads((int8 / "model.json").read_text())
    assert meta["compression"]["float32_bytes"] == pytest.approx(weights_bytes(fp32), rel=0.05)


def test_adapter_int8_export_loads_to_the_fake_quant_models_outputs(tmp_path: Path) -> None:
    sam, config = adapted()
    insert_fake_quant(sam)
    folder = export_int8(sam, config, tmp_path / "int8", {"metrics": {"dice": 0.9}})
    assert isinstance(sam.image_encoder.blocks[0].attn.qkv, AdaLoraLinear)  # caller's model kept
    assert isinstance(sam.image_encoder.blocks[0].attn.proj, FakeQuantLinear)
    loaded = load_model_folder(folder)
    assert loaded.is_int8 and loaded.meta["adapter"] is None
    assert loaded.meta["merged_adapter"]["rank_pattern"] == rank_pattern(sam)
    assert loaded.meta["metrics"] == {"dice": 0.9}
    assert isinstance(loaded.sam.image_encoder.blocks[0].attn.qkv, nn.Linear)  # merged, FP32
    assert isinstance(loaded.sam.image_encoder.blocks[0].mlp.lin1, Int8Linear)
    assert isinstance(loaded.sam.mask_decoder.output_upscaling[0], Int8ConvTranspose2d)
    (fa, la), (fb, lb) = outputs(sam), outputs(loaded.sam)
    torch.testing.assert_close(fb, fa, rtol=1e-4, atol=1e-4)  # merging qkv only reorders sums
    torch.testing.assert_close(lb, la, rtol=1e-4, atol=1e-4)
    for a, b in zip((la > 0).flatten(0, 1), (lb > 0).flatten(0, 1), strict=True):
        assert dice(a, b) >= 0.99


def test_folder_with_adapters_and_int8_layers_round_trips_exactly(tmp_path: Path) -> None:
    sam, config = adapted()
    layers = select_layers(sam)
    convert_to_int8(sam, layers)
    structure = describe_structure(sam)
    assert structure["adapter"] and structure["int8"]["layers"] == layers
    loaded = load_model_folder(save_sam_folder(tmp_path / "m", sam, config))
    assert rank_pattern(loaded.sam) == rank_pattern(sam)
    assert int8_layers(loaded.sam) == layers
    for a, b in zip(outputs(sam), outputs(loaded.sam), strict=True):
        assert torch.equal(a, b)


def test_export_refuses_a_selection_that_contradicts_the_trained_layers(tmp_path: Path) -> None:
    sam, config = build()
    insert_fake_quant(sam, QuantSelection(encoder_neck=False))
    with pytest.raises(ValueError, match="fake-quantised"):
        export_int8(sam, config, tmp_path / "x", selection=QuantSelection())
    meta = json.loads((export_int8(sam, config, tmp_path / "ok") / "model.json").read_text())
    assert meta["int8"]["selection"]["encoder_neck"] is False
    assert "image_encoder.neck.0" not in meta["int8"]["layers"]


def test_unknown_int8_scheme_or_layer_is_refused(tmp_path: Path) -> None:
    sam, config = build()
    folder = export_int8(sam, config, tmp_path / "int8")
    meta_path = folder / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["int8"]["scheme"]["version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="scheme version"):
        load_model_folder(folder)
    meta["int8"]["scheme"]["version"] = 1
    meta["int8"]["layers"].append("mask_decoder.no_such_layer")
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="no_such_layer"):
        load_model_folder(folder)


def test_stage2_checkpoint_exports_the_layers_it_was_trained_on(tmp_path: Path) -> None:
    sam, config = adapted()
    selection = QuantSelection(encoder_neck=False)
    trained = insert_fake_quant(sam, selection)
    best = load_model_folder(save_sam_folder(tmp_path / "best", sam, config))
    assert best.meta["qat"] == {"layers": trained, "selection": selection.to_dict()}
    assert not any(isinstance(m, FakeQuantLinear) for m in best.sam.modules())  # plain model
    assert rank_pattern(best.sam) == rank_pattern(sam)
    loaded = load_model_folder(export_int8(best.sam, config, tmp_path / "int8"))
    assert loaded.meta["int8"]["layers"] == trained
    assert loaded.meta["int8"]["selection"] == selection.to_dict()
    (fa, la), (fb, lb) = outputs(sam), outputs(loaded.sam)
    torch.testing.assert_close(fb, fa, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(lb, la, rtol=1e-4, atol=1e-4)
