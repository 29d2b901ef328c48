"""INT8 inference modules: real integer matmuls on the CPU, a float path elsewhere.

:class:`Int8Linear` stores ``weight_int8`` (out, in) int8, a per-tensor ``weight_scale`` and an
FP32 ``bias``. On the CPU it quantises each input row on the fly (dynamic symmetric per-token,
:func:`engine.quant.qat.quantize_per_token`), multiplies INT8 x INT8 -> INT32 with
``torch._int_mm`` and rescales by ``s_row * scale_W``, then adds the bias. ``torch._int_mm`` on
the CPU takes any 2-D shape (checked down to 1 x 5 x 3), so nothing is padded there; on CUDA
(cuBLASLt: more than 16 rows, inner and output sizes multiples of 8) activation and weight are
zero-padded and the result cut back (:mod:`engine.quant.int_mm`), which changes no integer sum.
With ``kernel="float"`` (and inside an ONNX export) the same formula runs as a float matmul of
the integer grid values (weight grid cached once per device), which is what
:class:`engine.quant.qat.FakeQuantLinear` computes: integer sums are exact in FP32 below 2^24,
so fake-quant, integer kernel and float path agree bit for bit in practice.

Conv2d / ConvTranspose2d layers store INT8 too but dequantise their weight once (cached per
device and dtype) and convolve in float; their inputs are not quantised (weight-only INT8,
and the fake-quant does the same). They are 7 layers (neck 1x1 and 3x3, decoder upscaling,
prompt mask downscaling): 2.4 ms of the compact INT8 encoder's 18 ms, 0.13 s of ViT-B's 29 s.

Kernel choice, measured here (2 cores, AVX-512 VNNI, 1 thread, medians; per layer INT8 vs
``nn.Linear`` FP32): encoder 256 x 192 -> 768 0.145 vs 0.71 ms (4.9x), 256 x 768 -> 192 4.1x,
256 x 192 -> 192 2.7x; decoder 256 x 256 -> 128 2.5x, 7 x 256 -> 2048 2.6x. Only tiny calls
lose: 1-7 rows x 256 -> 256 take 22-24 us against 6-19 us, the 7 small quantise/matmul/rescale
ops cost more than the matmul itself. The float path with the same numerics is slower than the
integer kernel at every size (25-41 us there), so ``kernel="auto"`` always takes the integer
kernel on the CPU; running those token-side decoder layers in plain FP32 would save ~0.5 ms
per box but compute something Stage 2 did not train.

Whole model (1 thread, quiet machine): compact encoder FP32 27.5 ms -> INT8 17.9 ms (1.5x).
What remains is FP32 by design or not a matmul: qkv (4.5 ms), attention bmm/softmax, neck
convs, norms.
ViT-B encoder at 1024 px, profiled (1 thread): FP32 34.6 s with 13 s in Linear layers; in INT8
the 9.5 s of proj/MLP matmuls become 1.5 s of ``_int_mm`` plus ~1.9 s of quantise/rescale; SAM's
attention (rel-pos bias add ~9 s, bmm 7.4 s, softmax 3 s) is untouched and bounds the speed-up
at ~1.6x even with free Linear layers, so the larger gain ONNX Runtime shows in
measurements.md cannot come from INT8 Linear layers alone.

The ceiling, measured by ``benchmarks/int8.py`` (its ``int8_free_linear`` column replays each
integer Linear layer's output instead of computing it): shipped compact model, 2 threads, torch
FP32 encoder 29.3 ms, ours 24.8 ms, with every INT8 Linear free 16.8 ms, so no Linear kernel
can take the encoder past 1.74x while qkv, attention, norms, GELU and the convs stay FP32 as the
paper selects; box-to-mask 11.8 / 13.7 / 7.0 ms (the decoder's 7-row token matmuls lose to
FP32 on quantise/rescale overhead, see above).

Profiled again for issue 18 (torch.profiler, shipped INT8 encoder, 256 px, 1 thread, a busy
machine, per encoder run): FP32 qkv ``addmm`` 18 ms, copies 14 ms (242 per run: window
partition/unpartition and head permutes in segment-anything's attention, the int8 cast and the
int32 -> float promotion of each INT8 layer), ``_int_mm`` 12 ms, attention ``bmm`` 10 ms, convs
15 ms (patch embedding and neck; on a quiet machine 0.8 + 2.9 ms, the same in FP32), GELU 5.5
ms, the quantising ``div`` 4 ms. Per 256 x 768 layer (quiet, 1 thread) quantise costs ~80 us
(``abs().amax()`` 31 us, ``div``/``round_``/int8 47 us) and rescale 11 us against 175 us of
``_int_mm``; ``linalg.vector_norm(inf)`` and ``aminmax`` give the same scale bit for bit but
take 13-17x longer than ``abs().amax()``, so the formula stays. The rest is FP32 by design
(qkv carries the AdaLoRA adapters; attention, softmax, GELU, LayerNorm, the convs' float
inputs): running it faster in another precision or through another library's kernels changes
the rounding Stage 2 trained with, and INT8 masks would no longer equal the fake-quant's
(ONNX Runtime running the same INT8 graph differs by up to 0.015 in the embedding, from float
rounding only: its masks agree with ours at mean Dice 0.9996, minimum 0.990 on 50 real images,
as closely as our own runtime agrees with itself when its input moves by one ulp; see
``benchmarks/onnx_agreement.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from engine.modules import set_submodule
from engine.quant.int_mm import int_mm, needs_padding, pad_weight_t
from engine.quant.qat import (
    dequantize,
    int8_linear_reference,
    quantize_per_token,
    quantize_weight,
    token_scale,
)

KERNELS = ("auto", "int", "float")
#: Devices where ``torch._int_mm`` runs (CUDA through :mod:`engine.quant.int_mm`'s padding).
INT_MM_DEVICES = ("cpu", "cuda")


def _invalidate_after_load(module: _Int8Base, _incompatible_keys: object) -> None:
    module.invalidate()


class _Int8Base(nn.Module):
    """INT8 weight + FP32 scale and bias buffers, and weights derived from them, cached per
    device and dtype (transposed int8 for ``_int_mm``, float grid or dequantised weight)."""

    weight_int8: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor | None

    def _init_buffers(
        self, weight_shape: tuple[int, ...], bias_size: int | None, device: torch.device | None
    ) -> None:
        self.register_buffer("weight_int8", torch.zeros(weight_shape, dtype=torch.int8, device=device))
        self.register_buffer("weight_scale", torch.ones((), dtype=torch.float32, device=device))
        bias = None if bias_size is None else torch.zeros(bias_size, device=device)
        self.register_buffer("bias", bias)
        self._cache: dict[str, tuple[tuple, torch.Tensor]] = {}
        self.register_load_state_dict_post_hook(_invalidate_after_load)

    def invalidate(self) -> None:
        """Drop cached derived weights; needed after changing the buffers in place
        (``load_state_dict`` and ``.to()`` are handled)."""
        self._cache.clear()

    def _cached(self, kind: str, make, dtype: torch.dtype) -> torch.Tensor:
        """A tensor derived from the weight, rebuilt when the weight, device or dtype changes."""
        w = self.weight_int8
        key = (w.device, w.data_ptr(), self.weight_scale.data_ptr(), dtype)
        hit = self._cache.get(kind)
        if hit is not None and hit[0] == key:
            return hit[1]
        with torch.inference_mode(False), torch.no_grad():
            value = make().to(dtype)
        self._cache[kind] = (key, value)
        return value

    def float_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The dequantised weight ``q * scale`` (cached; traced as int8 -> float in an ONNX
        export, so the file keeps the int8 weight and ONNX Runtime folds the cast at load)."""
        if torch.onnx.is_in_onnx_export():
            return dequantize(self.weight_int8, self.weight_scale).to(dtype)
        return self._cached("float", lambda: dequantize(self.weight_int8, self.weight_scale), dtype)

    def _bias_as(self, dtype: torch.dtype) -> torch.Tensor | None:
        return None if self.bias is None else self.bias.to(dtype)

    def _load_weight(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        q, scale = quantize_weight(weight)
        self.invalidate()
        with torch.no_grad():
            self.weight_int8.copy_(q)
            self.weight_scale.copy_(scale)
            if bias is not None:
                self.bias.copy_(bias.detach().float())


class Int8Linear(_Int8Base):
    """INT8 ``nn.Linear`` replacement. Input ``(..., in_features)`` -> ``(..., out_features)``.

    ``kernel``: ``"auto"`` (integer kernel on the CPU and on CUDA, float path elsewhere),
    ``"int"`` (CPU or CUDA) or ``"float"`` (the device-agnostic path). All give the same
    numbers; the module docstring has the timings behind ``"auto"``.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, device: torch.device | None = None
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.kernel = "auto"
        self._init_buffers((out_features, in_features), out_features if bias else None, device)

    @classmethod
    def empty_like(cls, linear: nn.Linear) -> Int8Linear:
        return cls(linear.in_features, linear.out_features, linear.bias is not None, linear.weight.device)

    @classmethod
    def from_float(cls, linear: nn.Linear) -> Int8Linear:
        """Quantise ``linear``'s weight (per-tensor symmetric); bias stays FP32."""
        module = cls.empty_like(linear)
        module._load_weight(linear.weight, linear.bias)
        return module

    def uses_int_mm(self, x: torch.Tensor) -> bool:
        """Whether ``forward(x)`` runs the integer kernel (``"auto"``: on the CPU and CUDA)."""
        if self.kernel == "int" and x.device.type not in INT_MM_DEVICES:
            raise RuntimeError(f"kernel='int' needs a CPU or CUDA tensor, not {x.device.type}")
        return self.kernel != "float" and x.device.type in INT_MM_DEVICES

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        if not self.uses_int_mm(x):
            # Same formula as FakeQuantLinear: grid values as floats, then rescale.
            q, s = quantize_per_token(x2)
            if torch.onnx.is_in_onnx_export():  # int8 in the file, cast folded at load
                q_w = self.weight_int8.float()
            else:
                q_w = self._cached("grid", lambda: self.weight_int8, torch.float32)
            out = int8_linear_reference(q.float(), s, q_w, self.weight_scale, self.bias)
            return out.reshape(*shape[:-1], self.out_features).to(x.dtype)
        # quantize_per_token without its clamp: |x / s| <= 127 (+1 ulp) by construction, so the
        # clamp changes nothing; every elementwise pass dropped is one parallel region less
        # (each can stall on a busy machine).
        s = token_scale(x2)
        q = torch.div(x2.float(), s).round_().to(torch.int8)
        pad = needs_padding(x.device)
        if pad:  # CUDA: K' x N' column-major, zero-padded to multiples of 8
            w_t = self._cached("int_t_padded", lambda: pad_weight_t(self.weight_int8), torch.int8)
            acc = int_mm(q, w_t, self.out_features)
        else:
            w_t = self._cached("int_t", lambda: self.weight_int8.t().contiguous(), torch.int8)
            acc = torch._int_mm(q, w_t)
        scale = s * self.weight_scale
        out = torch.mul(acc, scale) if self.bias is None else torch.addcmul(self.bias, acc, scale)
        return out.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, kernel={self.kernel}"
        )


class _Int8ConvBase(_Int8Base):
    _conv_attrs = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups")

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        if getattr(conv, "padding_mode", "zeros") != "zeros":
            raise ValueError(f"INT8 convs support zero padding only, not {conv.padding_mode!r}")
        for attr in self._conv_attrs:
            setattr(self, attr, getattr(conv, attr))
        bias_size = conv.out_channels if conv.bias is not None else None
        self._init_buffers(tuple(conv.weight.shape), bias_size, conv.weight.device)

    @classmethod
    def empty_like(cls, conv: nn.Module) -> _Int8ConvBase:
        return cls(conv)

    @classmethod
    def from_float(cls, conv: nn.Module) -> _Int8ConvBase:
        """Quantise ``conv``'s weight (per-tensor symmetric); bias stays FP32."""
        module = cls(conv)
        module._load_weight(conv.weight, conv.bias)
        return module

    def extra_repr(self) -> str:
        return ", ".join(f"{a}={getattr(self, a)}" for a in self._conv_attrs)


class Int8Conv2d(_Int8ConvBase):
    """INT8-stored ``nn.Conv2d``; convolves in float with the weight dequantised once."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(
            x, self.float_weight(x.dtype), self._bias_as(x.dtype), self.stride, self.padding,
            self.dilation, self.groups,
        )


class Int8ConvTranspose2d(_Int8ConvBase):
    """INT8-stored ``nn.ConvTranspose2d``; float transposed conv with the dequantised weight."""

    _conv_attrs = _Int8ConvBase._conv_attrs + ("output_padding",)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(
            x, self.float_weight(x.dtype), self._bias_as(x.dtype), self.stride, self.padding,
            self.output_padding, self.groups, self.dilation,
        )


INT8_TYPES = (Int8Linear, Int8Conv2d, Int8ConvTranspose2d)


def _runtime_type(module: nn.Module) -> type[_Int8Base]:
    # Fake-quant modules subclass the plain ones, so isinstance covers both; order matters
    # because ConvTranspose2d is not a Conv2d subclass but both are _ConvNd.
    if isinstance(module, nn.Linear):
        return Int8Linear
    if isinstance(module, nn.ConvTranspose2d):
        return Int8ConvTranspose2d
    if isinstance(module, nn.Conv2d):
        return Int8Conv2d
    raise ValueError(f"no INT8 runtime module for {type(module).__name__}")


def convert_to_int8(model: nn.Module, names: Iterable[str]) -> list[str]:
    """Quantise the named Linear/Conv2d/ConvTranspose2d (plain or fake-quant) layers in place.

    The resulting model computes what the fake-quant model computed (up to FP32 rounding).
    """
    names = list(names)
    for name in names:
        module = model.get_submodule(name)
        if isinstance(module, INT8_TYPES):
            continue
        set_submodule(model, name, _runtime_type(module).from_float(module))
    return names


def prepare_int8(model: nn.Module, names: Iterable[str]) -> list[str]:
    """Replace the named layers by empty INT8 modules of the same shapes (before loading)."""
    names = list(names)
    for name in names:
        module = model.get_submodule(name)
        set_submodule(model, name, _runtime_type(module).empty_like(module))
    return names


def int8_layers(model: nn.Module) -> list[str]:
    """Names of the INT8 runtime modules in ``model`` (module order)."""
    return [n for n, m in model.named_modules() if isinstance(m, INT8_TYPES)]


def set_kernel(model: nn.Module, kernel: str) -> None:
    """Force ``"int"``/``"float"`` (or back to ``"auto"``) on every :class:`Int8Linear`."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}")
    for m in model.modules():
        if isinstance(m, Int8Linear):
            m.kernel = kernel
