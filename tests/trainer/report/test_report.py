"""The HTML run report: self-contained, every section present, missing pieces named."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from safetensors.torch import load_file

from engine.errors import LungSamError
from engine.models import save_sam_folder
from trainer.report import quantization_errors, write_report

SECTIONS = ("Training curves", "Adapter ranks", "Quantization error", "Model size", "SSIM maps")
QUANTIZED = ("image_encoder.blocks.0.mlp.lin1", "mask_decoder.iou_prediction_head.layers.0")


def _events(path: Path) -> None:
    lines = []
    for step in range(1, 31):
        lines.append({"event": "step", "step": step, "loss": 1.0 / step, "stage": "stage1"})
    for epoch in range(1, 4):
        lines.append({"event": "epoch", "epoch": epoch, "val_dice": 0.8 + 0.05 * epoch,
                      "val_dice_per_lung": 0.78 + 0.05 * epoch})
    for step, rank in ((10, 4), (20, 3)):
        lines.append({"event": "rank", "step": step,
                      "ranks": {"image_encoder.blocks.0.attn.qkv": rank,
                                "image_encoder.blocks.1.attn.qkv": rank - 1}})
    path.write_text("\n".join(json.dumps(e) for e in lines) + "\n{\"event\": \"st")  # torn line


def _int8_folder(best: Path, out: Path) -> None:
    """Hand-written INT8 export of two layers of ``best`` (symmetric per-tensor scales)."""
    weights = load_file(str(best / "weights.safetensors"))
    tensors = {}
    for name in QUANTIZED:
        w = weights[f"{name}.weight"].numpy()
        scale = np.float32(np.abs(w).max() / 127)
        tensors[f"{name}.weight_int8"] = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        tensors[f"{name}.weight_scale"] = np.array(scale, np.float32)
    tensors["image_encoder.pos_embed"] = weights["image_encoder.pos_embed"].numpy()
    out.mkdir()
    save_file(tensors, str(out / "weights.safetensors"))
    meta = {"format": "lungsam-model", "format_version": 1, "name": "int8",
            "int8": {"layers": list(QUANTIZED)}, "weights": {"file": "weights.safetensors"}}
    (out / "model.json").write_text(json.dumps(meta))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def run_dir(tiny_sam, tmp_path) -> Path:
    sam, config = tiny_sam
    run = tmp_path / "run"
    run.mkdir()
    _events(run / "events.jsonl")
    best = save_sam_folder(run / "best", sam, config)
    meta = json.loads((best / "model.json").read_text())
    meta["adapter"] = {"type": "adalora", "init_r": 4, "rank_pattern": {
        "image_encoder.blocks.0.attn.qkv": [1, 1, 0, 1],
        "image_encoder.blocks.1.attn.qkv": [1, 0, 0, 0]}}
    (best / "model.json").write_text(json.dumps(meta))
    _int8_folder(best, run / "int8")
    (run / "summary.json").write_text(json.dumps(
        {"stage": "stage2", "best_epoch": 3, "trainable_params": 1234, "total_params": 98765}))
    return run


@pytest.fixture
def data2(cxr_dir, tmp_path) -> Path:
    root = tmp_path / "data2"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for image in sorted((cxr_dir / "images").iterdir())[:2]:
        shutil.copy(image, root / "images" / image.name)
        shutil.copy(cxr_dir / "masks" / f"{image.stem}.png", root / "masks" / f"{image.stem}.png")
    return root


def _sections(page: str) -> dict[str, str]:
    parts = re.findall(r"<section><h2>(.*?)</h2>(.*?)</section>", page, flags=re.S)
    return {title: body for title, body in parts}


def test_report_is_self_contained_and_has_every_section(run_dir, tmp_path):
    out = write_report(run_dir, tmp_path / "report" / "r.html")
    page = out.read_text(encoding="utf-8")
    assert "data:image/png;base64," in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    sections = _sections(page)
    assert all(any(t.startswith(s) for t in sections) for s in SECTIONS)
    body = {s: next(v for t, v in sections.items() if t.startswith(s)) for s in SECTIONS}
    for name in ("Training curves", "Adapter ranks", "Quantization error"):
        assert "data:image/png;base64," in body[name] and "not available" not in body[name]
    assert body["Training curves"].count("<img") == 2  # loss and validation Dice
    assert "best validation Dice: 0.9500" in body["Training curves"]
    assert "2 adapted layers, total rank 4" in body["Adapter ranks"]
    assert "quantized layers compared</th><td>2<" in body["Quantization error"]
    assert "1,234" in body["Model size"] and "INT8 compression" in body["Model size"]
    assert "not available: no data folder given" in body["SSIM maps"]


def test_quantization_error_is_within_half_a_step(run_dir):
    data = quantization_errors(run_dir / "int8", run_dir / "best")
    assert data["layers"] == sorted(QUANTIZED)
    error = data["fp32"] - data["deq"]
    assert error.size == data["fp32"].size > 1000
    assert 0 < data["worst_half_steps"] <= 1.0 + 1e-5
    assert abs(error.mean()) < 0.2 * error.std()  # round to nearest: unbiased


def test_fp32_reference_can_be_named_in_summary(run_dir):
    (run_dir / "best").rename(run_dir / "stage1-best")
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "fp32_model": "stage1-best"}))
    page = write_report(run_dir, run_dir / "r.html").read_text()
    quant = next(v for t, v in _sections(page).items() if t.startswith("Quantization"))
    assert "not available" not in quant


def test_ssim_maps_are_drawn_for_data(tiny_sam, data2, tmp_path):
    sam, config = tiny_sam
    run = tmp_path / "plain-run"
    save_sam_folder(run / "best", sam, config)
    page = write_report(run, tmp_path / "r.html", data_dir=data2, n_ssim=2).read_text()
    ssim = _sections(page)["SSIM maps"]
    assert "2 image(s)" in ssim and "data:image/png;base64," in ssim
    assert "not available: the run has no AdaLoRA adapters" in page
    assert "not available: events.jsonl not found" in page


def test_empty_run_folder_gives_a_report_of_missing_pieces(tmp_path):
    run = tmp_path / "empty-run"
    run.mkdir()
    page = write_report(run, tmp_path / "r.html").read_text()
    sections = _sections(page)
    assert len(sections) == len(SECTIONS)
    assert all("not available" in body for body in sections.values())
    assert "data:image/png" not in page


def test_missing_run_folder_is_a_user_error(tmp_path):
    with pytest.raises(LungSamError, match="run folder not found"):
        write_report(tmp_path / "nope", tmp_path / "r.html")


def test_cli_report_writes_the_html(run_dir, tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "cli.html"
    assert main(["report", str(run_dir), "-o", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing"), "-o", str(out)]) == 2
    assert "run folder not found" in capsys.readouterr().err


def test_curves_show_every_mask_style_by_name():
    from trainer.report import training_curves

    events = [
        {"event": "model", "mask_styles": ["visible", "anatomical"]},
        {"event": "step", "step": 1, "loss": 0.5},
        {"event": "epoch", "epoch": 1, "val_dice": 0.9, "val_dice_per_lung": 0.91,
         "val_dice_style1": 0.8, "val_dice_per_lung_style1": 0.82},
        {"event": "epoch", "epoch": 2, "val_dice": 0.95, "val_dice_per_lung": 0.96,
         "val_dice_style1": 0.85, "val_dice_per_lung_style1": float("nan")},
    ]
    (steps, losses), (epochs, series) = training_curves(events)
    assert steps == [1] and losses == [0.5] and epochs == [1, 2]
    assert series["union box"] == [0.9, 0.95]
    assert series["union box, anatomical"] == [0.8, 0.85]
    assert series["per-lung boxes, anatomical"][0] == 0.82 and np.isnan(series["per-lung boxes, anatomical"][1])
