"""INT8 runtime modules against the fake-quant modules Stage 2 trains."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from engine.quant import (
    FakeQuantConv2d,
    FakeQuantConvTranspose2d,
    FakeQuantLinear,
    Int8Conv2d,
    Int8ConvTranspose2d,
    Int8Linear,
    convert_to_int8,
    insert_fake_quant,
    int8_layers,
    quantize_weight,
    set_kernel,
)
from engine.sam import build_sam, predict_boxes
from tests.sam_factory import tiny_config


def dice(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2 * int((a & b).sum()) / total


def fake_linear(seed: int, k: int, n: int) -> FakeQuantLinear:
    torch.manual_seed(seed)
    plain = nn.Linear(k, n)
    layer = FakeQuantLinear(k, n)
    layer.load_state_dict(plain.state_dict())
    return layer


@pytest.mark.parametrize("shape", [(3, 7, 48), (1, 48), (2, 4, 4, 48)])
def test_int8_linear_matches_fake_quant_linear(shape: tuple[int, ...]) -> None:
    fq = fake_linear(0, 48, 40)
    runtime = Int8Linear.from_float(fq)
    x = torch.randn(shape) * torch.logspace(-2, 2, shape[-1])  # tokens with outlier channels
    with torch.inference_mode():
        expected, got = fq(x), runtime(x)
    assert got.shape == expected.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_int8_linear_multiplies_integers_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = torch._int_mm

    def spy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        calls.append((a.dtype, b.dtype))
        return real(a, b)

    monkeypatch.setattr(torch, "_int_mm", spy)
    runtime = Int8Linear.from_float(fake_linear(1, 16, 8))
    out = runtime(torch.randn(5, 16))
    assert calls == [(torch.int8, torch.int8)] and out.shape == (5, 8)
    runtime.kernel = "float"
    runtime(torch.randn(5, 16))
    assert len(calls) == 1


def test_float_kernel_used_off_cpu_gives_the_same_numbers() -> None:
    runtime = Int8Linear.from_float(fake_linear(2, 64, 24))
    x = torch.randn(9, 64)
    with torch.inference_mode():
        a = runtime(x)
        runtime.kernel = "float"
        b = runtime(x)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_odd_shapes_need_no_padding() -> None:
    runtime = Int8Linear.from_float(fake_linear(3, 5, 3))
    fq = fake_linear(3, 5, 3)
    x = torch.randn(1, 5)
    torch.testing.assert_close(runtime(x), fq(x), rtol=1e-6, atol=1e-6)
    assert runtime(torch.randn(0, 5)).shape == (0, 3)


def test_runtime_stores_int8_weight_fp32_scale_and_bias() -> None:
    plain = nn.Linear(32, 16)
    runtime = Int8Linear.from_float(plain)
    state = runtime.state_dict()
    assert sorted(state) == ["bias", "weight_int8", "weight_scale"]
    assert state["weight_int8"].dtype == torch.int8 and state["weight_scale"].dtype == torch.float32
    q, scale = quantize_weight(plain.weight)
    assert torch.equal(state["weight_int8"], q) and torch.equal(state["weight_scale"], scale)
    assert torch.equal(state["bias"], plain.bias.detach())


def test_loading_new_weights_refreshes_cached_weights() -> None:
    a = Int8Linear.from_float(nn.Linear(8, 8))
    b = Int8Linear.from_float(nn.Linear(8, 8))
    x = torch.randn(3, 8)
    for kernel in ("int", "float"):
        a.kernel = b.kernel = kernel
        a(x)  # fills the cache
        a.load_state_dict(b.state_dict())
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize(
    ("fake_type", "runtime_type", "kwargs"),
    [
        (FakeQuantConv2d, Int8Conv2d, dict(kernel_size=3, padding=1)),
        (FakeQuantConv2d, Int8Conv2d, dict(kernel_size=1, bias=False)),
        (FakeQuantConvTranspose2d, Int8ConvTranspose2d, dict(kernel_size=2, stride=2)),
    ],
)
def test_int8_convs_match_fake_quant_convs(fake_type, runtime_type, kwargs) -> None:
    torch.manual_seed(4)
    fq = fake_type(6, 10, **kwargs)
    runtime = runtime_type.from_float(fq)
    x = torch.randn(2, 6, 7, 7)
    with torch.inference_mode():
        torch.testing.assert_close(runtime(x), fq(x), rtol=1e-6, atol=1e-6)


def test_runtime_modules_move_with_the_model_and_keep_int8() -> None:
    runtime = Int8Linear.from_float(nn.Linear(8, 4))
    x = torch.randn(2, 8)
    expected = runtime(x)
    moved = copy.deepcopy(runtime).to(torch.float64)  # buffers follow .to like any module
    assert moved.weight_int8.dtype == torch.int8
    torch.testing.assert_close(moved(x), expected, rtol=1e-6, atol=1e-6)
    conv = Int8Conv2d.from_float(nn.Conv2d(3, 4, 3))
    out = conv(torch.randn(1, 3, 5, 5).double())  # dequantised weight follows the input dtype
    assert out.dtype == torch.float64


def test_int8_sam_agrees_with_fake_quant_sam() -> None:
    torch.manual_seed(0)
    fq = build_sam(tiny_config())
    names = insert_fake_quant(fq)
    runtime = copy.deepcopy(fq)
    assert convert_to_int8(runtime, names) == names == int8_layers(runtime)
    images = torch.randn(2, 3, 64, 64)
    boxes = torch.tensor([[4.0, 6.0, 40.0, 58.0], [10.0, 0.0, 63.0, 50.0], [0.0, 0.0, 63.0, 63.0]])
    index = torch.tensor([0, 1, 1])
    with torch.inference_mode():
        fa, fb = fq.image_encoder(images), runtime.image_encoder(images)
        la, ia = predict_boxes(fq, fa, boxes, index, multimask_output=True)
        lb, ib = predict_boxes(runtime, fb, boxes, index, multimask_output=True)
        set_kernel(runtime, "float")
        lc, _ = predict_boxes(runtime, runtime.image_encoder(images), boxes, index, multimask_output=True)
    torch.testing.assert_close(fb, fa, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lb, la, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ib, ia, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lc, la, rtol=1e-5, atol=1e-5)
    for a, b in zip(la > 0, lb > 0, strict=True):
        for ma, mb in zip(a, b, strict=True):
            assert dice(ma, mb) >= 0.99


def test_a_boxs_int8_mask_does_not_depend_on_the_other_boxes_in_the_batch() -> None:
    torch.manual_seed(1)
    sam = build_sam(tiny_config())
    convert_to_int8(sam, insert_fake_quant(sam))
    image = torch.randn(1, 3, 64, 64)
    boxes = torch.tensor([[4.0, 6.0, 40.0, 58.0], [0.0, 0.0, 63.0, 63.0], [30.0, 30.0, 34.0, 34.0]])
    with torch.inference_mode():
        features = sam.image_encoder(image)
        alone, _ = predict_boxes(sam, features, boxes[:1], torch.tensor([0]))
        together, _ = predict_boxes(sam, features, boxes, torch.tensor([0, 0, 0]))
    torch.testing.assert_close(together[:1], alone, rtol=1e-6, atol=1e-6)
