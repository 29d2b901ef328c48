"""INT8 runtime modules against the fake-quant modules Stage 2 trains."""

from __future__ import annotations

import contextlib
import copy
import io
import warnings

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
    int8_runtime,
    prepare_int8,
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


# -- behaviour the comparisons above do not reach ------------------------------------------
def test_int8_linear_defaults_to_a_bias_like_nn_linear() -> None:
    layer = Int8Linear(4, 3)
    assert layer.bias is not None and layer.bias.shape == (3,)
    assert "bias=True" in repr(layer) and "bias=False" in repr(Int8Linear(4, 3, bias=False))


def test_derived_weights_are_cached_and_follow_a_replaced_buffer() -> None:
    conv = Int8Conv2d.from_float(nn.Conv2d(3, 4, 3))
    assert conv.float_weight() is conv.float_weight()  # dequantised once, not per call
    assert conv.float_weight(torch.float64).dtype == torch.float64
    other = Int8Conv2d.from_float(nn.Conv2d(3, 4, 3))
    x = torch.randn(1, 3, 6, 6)
    conv(x)
    conv.weight_int8, conv.weight_scale = other.weight_int8.clone(), other.weight_scale.clone()
    conv.bias = other.bias.clone()
    assert torch.equal(conv(x), other(x))  # a new buffer is a new cache key, no invalidate()
    for kernel in ("int", "float"):
        a = Int8Linear.from_float(nn.Linear(8, 6))
        b = Int8Linear.from_float(nn.Linear(8, 6))
        a.kernel = b.kernel = kernel
        x = torch.randn(3, 8)
        first = a(x)
        assert torch.equal(a(x), first)  # served from the cache
        # the module docstring's promise: the weight's grid / transposed int8 is built once per
        # device and dtype, not per call (white-box: the cache is the only place it shows)
        assert set(a._cache) == {"int": {"int_t"}, "float": {"grid"}}[kernel]
        a.weight_int8, a.weight_scale, a.bias = b.weight_int8.clone(), b.weight_scale.clone(), b.bias.clone()
        assert torch.equal(a(x), b(x))


def test_a_weight_cached_under_inference_mode_still_serves_autograd() -> None:
    conv = Int8Conv2d.from_float(nn.Conv2d(3, 4, 3))
    x = torch.randn(1, 3, 6, 6)
    with torch.inference_mode():
        conv(x)  # fills the cache inside inference mode
    x.requires_grad_(True)
    conv(x).sum().backward()  # an inference tensor could not be saved for backward
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_kernel_int_refuses_devices_without_int_mm() -> None:
    layer = Int8Linear.from_float(nn.Linear(8, 4))
    meta = torch.empty(2, 8, device="meta")
    assert not layer.uses_int_mm(meta)  # auto: float path off CPU/CUDA
    layer.kernel = "int"
    assert layer.uses_int_mm(torch.randn(2, 8))
    with pytest.raises(RuntimeError, match="CPU or CUDA"):
        layer.uses_int_mm(meta)


def test_padded_kernel_is_used_where_int_mm_has_shape_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    # CUDA's rules, checked on the CPU: with needs_padding the padded int_mm runs, same result
    layer = Int8Linear.from_float(fake_linear(5, 12, 5))
    x = torch.randn(3, 12)
    plain = layer(x)
    calls = []
    real = int8_runtime.int_mm

    def spy(q: torch.Tensor, w_t: torch.Tensor, n: int) -> torch.Tensor:
        calls.append(tuple(w_t.shape))
        return real(q, w_t, n)

    monkeypatch.setattr(int8_runtime, "needs_padding", lambda device: True)
    monkeypatch.setattr(int8_runtime, "int_mm", spy)
    assert torch.equal(layer(x), plain)
    assert calls == [(16, 8)]  # K 12 -> 16, N 5 -> 8


def test_set_kernel_sets_every_int8_linear_and_refuses_unknown_kernels() -> None:
    torch.manual_seed(0)
    sam = build_sam(tiny_config())
    convert_to_int8(sam, insert_fake_quant(sam))
    set_kernel(sam, "float")
    linears = [m for m in sam.modules() if isinstance(m, Int8Linear)]
    assert linears and all(m.kernel == "float" for m in linears)
    assert not any(hasattr(m, "kernel") for m in sam.modules() if not isinstance(m, Int8Linear))
    with pytest.raises(ValueError, match="kernel must be one of"):
        set_kernel(sam, "fast")


def test_convert_skips_layers_already_int8_and_converts_the_rest() -> None:
    torch.manual_seed(0)
    sam = build_sam(tiny_config())
    names = insert_fake_quant(sam)
    convert_to_int8(sam, names[:1])
    first = sam.get_submodule(names[0])
    assert convert_to_int8(sam, names) == names
    assert sam.get_submodule(names[0]) is first  # not quantised twice
    assert int8_layers(sam) == names


def test_prepared_empty_layers_load_a_converted_state_dict() -> None:
    # how an INT8 model folder is loaded: empty INT8 layers of the right shapes, then the weights
    torch.manual_seed(0)
    source = build_sam(tiny_config())
    names = insert_fake_quant(source)
    convert_to_int8(source, names)
    target = build_sam(tiny_config())
    assert prepare_int8(target, names) == names == int8_layers(target)
    for name in names:
        assert type(target.get_submodule(name)) is type(source.get_submodule(name))
    target.load_state_dict(source.state_dict())
    images = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(target.image_encoder(images), source.image_encoder(images))


def test_onnx_export_writes_int8_weights_not_cached_float_copies() -> None:
    onnx = pytest.importorskip("onnx")

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = Int8Conv2d.from_float(nn.Conv2d(3, 8, 1))
            self.lin = Int8Linear.from_float(nn.Linear(8, 8))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(self.conv(x).permute(0, 2, 3, 1))

    model = Tiny()
    set_kernel(model, "float")
    x = torch.randn(1, 3, 4, 4)
    model(x)  # fills the caches: the export must not pick them up
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17, do_constant_folding=False)
    graph = onnx.load_from_string(buffer.getvalue()).graph
    shapes = {
        (t.data_type, tuple(t.dims)) for t in graph.initializer
    } | {
        (n.attribute[0].t.data_type, tuple(n.attribute[0].t.dims))
        for n in graph.node if n.op_type == "Constant" and n.attribute and n.attribute[0].t.dims
    }
    int8, fp32 = onnx.TensorProto.INT8, onnx.TensorProto.FLOAT
    assert (int8, (8, 3, 1, 1)) in shapes and (int8, (8, 8)) in shapes
    assert (fp32, (8, 3, 1, 1)) not in shapes and (fp32, (8, 8)) not in shapes
