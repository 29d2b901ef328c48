"""The CUDA padding of ``torch._int_mm``, checked on the CPU (whose ``_int_mm`` takes padded
and unpadded shapes alike): shapes, un-padding, and products equal to the float reference."""

from __future__ import annotations

import pytest
import torch

from engine.quant import Int8Linear
from engine.quant import int8_runtime as runtime
from engine.quant.int_mm import int_mm, needs_padding, pad_weight_t, padded_shape


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((1, 5, 3), (17, 8, 8)),
        ((16, 8, 8), (17, 8, 8)),
        ((17, 8, 8), (17, 8, 8)),
        ((7, 256, 2048), (17, 256, 2048)),
        ((256, 192, 576), (256, 192, 576)),
        ((4096, 129, 33), (4096, 136, 40)),
    ],
)
def test_padded_shape_meets_the_cuda_rules(shape, expected):
    got = padded_shape(*shape)
    assert got == expected
    m, k, n = got
    assert m > 16 and k % 8 == 0 and n % 8 == 0
    assert padded_shape(*shape, pad=False) == shape


def test_padded_shape_refuses_empty_products():
    with pytest.raises(ValueError):
        padded_shape(0, 8, 8)


def test_needs_padding_only_on_cuda():
    assert needs_padding("cuda") and needs_padding(torch.device("cuda", 0))
    assert not needs_padding("cpu")


def test_padded_weight_is_column_major_with_zero_padding():
    w = torch.randint(-127, 128, (5, 3), dtype=torch.int8)  # (N, K)
    w_t = pad_weight_t(w)
    assert w_t.shape == (8, 8) and w_t.stride() == (1, 8)  # column-major K' x N'
    assert torch.equal(w_t[:3, :5], w.t())
    assert not w_t[3:].any() and not w_t[:, 5:].any()
    assert torch.equal(pad_weight_t(w, pad=False), w.t())


@pytest.mark.parametrize("mkn", [(1, 5, 3), (7, 256, 40), (16, 48, 2048), (33, 129, 17)])
def test_padded_int_mm_equals_the_unpadded_float_reference(mkn):
    m, k, n = mkn
    gen = torch.Generator().manual_seed(m * k + n)
    q = torch.randint(-127, 128, (m, k), dtype=torch.int8, generator=gen)
    w = torch.randint(-127, 128, (n, k), dtype=torch.int8, generator=gen)
    got = int_mm(q, pad_weight_t(w), n)
    assert got.shape == (m, n) and got.dtype == torch.int32
    expected = (q.double() @ w.double().t()).to(torch.int32)  # exact: |sum| < 2^31
    assert torch.equal(got, expected)
    assert torch.equal(int_mm(q, pad_weight_t(w, pad=False), n, pad=False), expected)


def test_int8_linear_padded_path_equals_the_cpu_path(monkeypatch):
    """Int8Linear's CUDA branch (padding) run on the CPU gives the CPU kernel's output bit for bit."""
    torch.manual_seed(0)
    layer = Int8Linear.from_float(torch.nn.Linear(45, 21))
    x = torch.randn(3, 5, 45) * torch.logspace(-2, 2, 45)
    with torch.inference_mode():
        expected = layer(x)
        monkeypatch.setattr(runtime, "needs_padding", lambda device: True)
        got = layer(x)
    assert "int_t_padded" in layer._cache
    assert torch.equal(got, expected)
