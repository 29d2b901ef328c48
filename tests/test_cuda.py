"""CUDA paths: prediction, INT8 runtime and a whole training pipeline on a GPU.

CI machines have no GPU, so these skip there; run them where one exists
(``python -m pytest tests/test_cuda.py``). They compare CUDA results with the CPU's, so a
device-specific bug (a tensor left on the wrong device, a dtype the kernel path misses)
fails here rather than on a user's workstation.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import synthetic_cxr
from trainer.evaluation import dice

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"


@pytest.mark.parametrize("name", ["lungsam-compact-int8", "lungsam-compact-base"])
def test_shipped_models_give_the_cpu_masks_on_cuda(name):
    from engine.imaging import load_image
    from engine.models import load_model
    from engine.predict import Predictor
    from engine.sam import mask_styles

    image = load_image(SAMPLES / "pneumocystis-pneumonia-1.jpg").pixels
    h, w = image.shape[:2]
    box = np.array([0.1 * w, 0.1 * h, 0.9 * w, 0.9 * h])
    cpu = Predictor(load_model(name), device="cpu")
    gpu = Predictor(load_model(name), device="cuda")
    assert next(gpu.sam.parameters()).is_cuda
    for predictor in (cpu, gpu):
        predictor.set_image(image)
    for style in mask_styles(cpu.sam):
        a = cpu.predict(boxes=box, style=style)
        b = gpu.predict(boxes=box, style=style)
        assert b.masks.shape == a.masks.shape == (1, 1, h, w)
        assert 0.05 < a.masks.mean() < 0.95
        assert dice(a.masks[0, 0], b.masks[0, 0]) > 0.995, style
        assert abs(float(a.scores[0, 0] - b.scores[0, 0])) < 0.02


def test_int8_linear_runs_on_cuda_like_on_cpu():
    from engine.quant import Int8Linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32)
    layer = Int8Linear.from_float(linear)
    x = torch.randn(5, 7, 64)
    expected = layer(x)
    got = layer.to("cuda")(x.cuda()).cpu()
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=1e-3)


def write_synthetic_set(folder: Path, n: int, grow_px: int = 0, seed: int = 0) -> Path:
    """Synthetic chest-like images with two lung ellipses; ``grow_px`` widens the masks."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i in range(n):
        image = synthetic_cxr(128, 128, seed=seed + i)
        mask = (cv2.GaussianBlur(image, (0, 0), 3) > 120).astype(np.uint8) * 255
        if grow_px:
            mask = cv2.dilate(mask, np.ones((2 * grow_px + 1,) * 2, np.uint8))
        cv2.imwrite(str(folder / "images" / f"case {i}.png"), image)
        cv2.imwrite(str(folder / "masks" / f"case {i}.png"), mask)
    return folder


def test_base_stage1_with_a_style_stage2_and_int8_eval_on_cuda(tmp_path):
    from engine.models import load_model
    from engine.sam import mask_styles
    from trainer.evaluation import evaluate_model
    from trainer.training import TrainRequest, read_events, run_stage, settings_for

    data = write_synthetic_set(tmp_path / "data", 12)
    wide = write_synthetic_set(tmp_path / "wide", 12, grow_px=4)
    common = dict(val=data, progress=False, device="cuda")
    run_stage(TrainRequest(stage="base", data=data, out=tmp_path / "base", arch="tiny",
                           settings=settings_for("base", epochs=2, batch_size=4), **common))
    run_stage(TrainRequest(stage="stage1", data=data, out=tmp_path / "s1", model=str(tmp_path / "base" / "best"),
                           settings=settings_for("stage1", epochs=2, batch_size=4), styles=["visible", "wide"], style_data=[("wide", wide)], **common))
    run_stage(TrainRequest(stage="stage2", data=data, out=tmp_path / "s2", model=str(tmp_path / "s1" / "best"),
                           settings=settings_for("stage2", epochs=1, batch_size=4), style_data=[("wide", wide)], **common))
    epochs = [e for e in read_events(tmp_path / "s1" / "events.jsonl") if e["event"] == "epoch"]
    assert len(epochs) == 2 and all(np.isfinite(e["val_dice_style1"]) for e in epochs)
    int8 = load_model(tmp_path / "s2" / "int8")
    assert int8.is_int8 and mask_styles(int8.sam) == ["visible", "wide"]
    on_gpu = evaluate_model(int8, data, device="cuda", style="wide")
    on_cpu = evaluate_model(load_model(tmp_path / "s2" / "int8"), data, device="cpu", style="wide")
    assert on_gpu.summary["n"] == 12
    assert abs(on_gpu.summary["metrics"]["dice"]["mean"] - on_cpu.summary["metrics"]["dice"]["mean"]) < 0.01


def test_int8_linear_uses_padded_int_mm_on_cuda_and_matches_the_cpu(monkeypatch):
    """Real integer kernels on CUDA: torch._int_mm is called (padded to its shape rules) and
    the INT32 sums equal the CPU's, so outputs agree to float rounding of the rescale."""
    from engine.quant import Int8Linear

    calls = []
    real = torch._int_mm
    monkeypatch.setattr(torch, "_int_mm", lambda a, b: calls.append((a.shape, a.device.type)) or real(a, b))
    torch.manual_seed(0)
    layer = Int8Linear.from_float(torch.nn.Linear(45, 21))
    x = torch.randn(3, 5, 45)
    expected = layer(x)
    got = layer.to("cuda")(x.cuda()).cpu()
    assert calls[-1] == (torch.Size([17, 48]), "cuda")
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
