"""Fake quantisation for Stage 2 (QAT) and the paper's choice of INT8 layers.

Numerics (shared, formula for formula, with :mod:`engine.quant.int8_runtime`, so Stage 2 trains
exactly what is deployed):

* Weights: symmetric per-tensor INT8, ``scale = max|W| / 127``,
  ``q = clamp(round(W / scale), -127, 127)``. ``round`` is ``torch.round``: half to even.
  -128 is never used, so the grid is symmetric and ``-q`` is always representable.
* Activations entering an INT8 ``nn.Linear``: dynamic symmetric per-token INT8, computed on the
  fly for every row of the input (the last dimension is the feature axis):
  ``s = max_k |x_k| / 127``, ``q = clamp(round(x / s), -127, 127)``. Why per-token: a token's
  quantisation then never depends on the other tokens, images or prompts in the batch (a per-tensor
  scale would make one box's mask change when a second box is drawn, and Stage 2's batches
  differ from the app's single image), and it is slightly more accurate at the same cost (one
  ``abs().amax()`` pass either way). Measured on the compact model (val Dice 0.954), 63 val
  images, fake-quant without QAT: mean |logit error| against FP32 0.0271 per-token vs 0.0300
  dynamic per-tensor, mask Dice against FP32 >= 0.998 for both. Dynamic, because no calibration
  set covers every scanner. The runtime multiplies INT8 by INT8 into INT32 and rescales with
  ``s * scale_W``; the fake-quant computes the same grid product as a float matmul (exact below
  2^24), so the two agree bit for bit in practice.
* Conv2d / ConvTranspose2d (neck, decoder upscaling, prompt mask downscaling): weight-only INT8;
  their activations stay float because the runtime dequantises these few, small weights once
  at load and runs the float convolution (see :mod:`engine.quant.int8_runtime`).
* A scale never drops below ``EPS / 127``: an all-zero tensor or row quantises to zeros.

Gradients: straight-through. Inside the representable range ``|x / s| <= 127.5`` the
gradient is the identity; outside it is zero (a clipped STE). Scales are computed from
detached values (no gradient through ``s``); with max-based scales nothing is ever clipped, so
in practice the gradient is the identity.

Selection (paper, Sec. 2.2.2 and Eq. 3): every image-encoder weight except the attention qkv
projections, the whole mask decoder and the prompt encoder go to INT8; qkv and the AdaLoRA
P, Q, Lambda stay FP32 (AdaLoRA is merged into the FP32 qkv at export, which is exact).
Decisions where the paper is silent, all switchable in :class:`QuantSelection`:

* ``encoder_neck=True``: Eq. 3 puts all of ``W_enc`` except qkv in INT8, and the neck's
  1x1 conv is a linear layer over channels; the two neck convs hold ~0.64M of the compact
  model's weights, so leaving them FP32 would cost ~2 MB for nothing.
* ``encoder_patch_embed=False``: the patch embedding sees raw normalised pixels and is small
  (3 x 16 x 16 x dim), so it stays FP32.
* The prompt encoder's only weights besides embeddings are the ``mask_downscaling`` convs
  (INT8). Its ``nn.Embedding`` tables (point/box/no-mask embeddings, a few KB) and the
  decoder's iou/mask tokens stay FP32: they are lookups, not multiplications.
* Any layer that carries an AdaLoRA adapter stays FP32 whatever its name: the merged weight
  ``W + P diag(Lambda m) Q`` is only exact in FP32.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.adalora import AdaLoraLinear
from engine.errors import ModelLoadError
from engine.modules import set_submodule

QMAX = 127
#: Floor of ``max|x|`` before dividing by 127, so all-zero tensors/rows get a finite scale.
EPS = 1e-12
#: Layer types that can be selected; the runtime has a module for each.
QUANTIZABLE = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
COMPONENTS = ("image_encoder", "prompt_encoder", "mask_decoder")
#: Attribute where :func:`insert_fake_quant` leaves the selection it applied (a dict, or None
#: for explicit names). It outlives :func:`remove_fake_quant` and a save/load of the float
#: weights (model.json ``qat`` section), so the INT8 export quantises the layers Stage 2 trained.
SELECTION_ATTR = "lungsam_quant_selection"


# -- numerics ---------------------------------------------------------------------------------
def weight_scale(weight: torch.Tensor) -> torch.Tensor:
    """Per-tensor scale ``max|W| / 127`` as a 0-dim FP32 tensor (on ``weight``'s device)."""
    return weight.detach().float().abs().amax().clamp_min(EPS) / QMAX


def quantize(x: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """``clamp(round(x / scale), -127, 127)`` as int8 (round half to even), computed in FP32."""
    return torch.div(x.detach().float(), scale).round_().clamp_(-QMAX, QMAX).to(torch.int8)


def dequantize(q: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """``q * scale`` in FP32."""
    return q.float() * scale


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 weight of the same shape, 0-dim FP32 scale)."""
    scale = weight_scale(weight)
    return quantize(weight, scale), scale


def token_scale(x: torch.Tensor) -> torch.Tensor:
    """Per-token scale ``max_k |x_k| / 127``, shape ``(..., 1)``, FP32, no gradient."""
    return x.detach().float().abs().amax(-1, keepdim=True).clamp_min_(EPS).div_(QMAX)


def quantize_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic symmetric per-token INT8: ``(q int8 (..., K), s FP32 (..., 1))``.

    The one formula both the fake-quant and the runtime use for Linear inputs.
    """
    scale = token_scale(x)
    return quantize(x, scale), scale


class _QuantSTE(torch.autograd.Function):
    """``clamp(round(x / s), -127, 127)`` as float (the INT8 grid values) forward;
    gradient ``1 / s`` where ``|x / s| <= 127.5`` and zero outside (clipped straight-through)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        ratio = x.detach().float() / scale
        ctx.save_for_backward(ratio.abs() <= QMAX + 0.5, scale)
        return ratio.round_().clamp_(-QMAX, QMAX)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        inside, scale = ctx.saved_tensors
        return grad * inside.to(grad.dtype) / scale.to(grad.dtype), None


def quant_ste(x: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """INT8 grid values of ``x`` (FP32, integers in [-127, 127]) with a straight-through
    gradient, so ``quant_ste(x, s) * s`` has gradient 1 inside the range."""
    scale = torch.as_tensor(scale, dtype=torch.float32, device=x.device).detach()
    return _QuantSTE.apply(x, scale)


def fake_quant(x: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Quantise-dequantise ``x`` with a given (detached) scale; straight-through gradient
    (identity inside the range, zero outside). Same dtype as ``x``."""
    scale = torch.as_tensor(scale, dtype=torch.float32, device=x.device).detach()
    return (quant_ste(x, scale) * scale).to(x.dtype)


def fake_quant_weight(weight: torch.Tensor) -> torch.Tensor:
    """Per-tensor symmetric fake-quant of a weight (values on the INT8 grid, same dtype)."""
    return fake_quant(weight, weight_scale(weight))


def fake_quant_per_token(x: torch.Tensor) -> torch.Tensor:
    """Per-token dynamic fake-quant of a Linear input, exactly as the runtime quantises it."""
    return fake_quant(x, token_scale(x))


def int8_linear_reference(
    q_x: torch.Tensor,
    s_x: torch.Tensor,
    q_w: torch.Tensor,
    s_w: torch.Tensor,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """``b + (q_x @ q_w^T) * (s_x * s_w)`` (one ``addcmul``) with the grid values as floats.

    The float matmul of integers is exact while partial sums stay below 2^24 (always for
    ``in_features <= 1040``, in practice far beyond), so this equals the runtime's
    ``int32 -> float`` rescale bit for bit; the fake-quant and the runtime's float path both
    use it.
    """
    acc = F.linear(q_x, q_w.to(q_x.dtype))
    scale = (s_x * s_w).to(acc.dtype)
    return acc * scale if bias is None else torch.addcmul(bias.to(acc.dtype), acc, scale)


# -- fake-quant modules (same parameters and state-dict keys as the plain modules) --------------
class FakeQuantLinear(nn.Linear):
    """``nn.Linear`` computing ``fq_token(x) @ fq(W)^T + b`` in the runtime's order
    (integer-grid matmul, then ``* s_x * s_W``, then ``+ b``); ``weight``/``bias`` stay FP32
    trainable parameters, so a Stage 2 state dict loads into a plain SAM."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s_x, s_w = token_scale(x), weight_scale(self.weight)
        out = int8_linear_reference(quant_ste(x, s_x), s_x, quant_ste(self.weight, s_w), s_w, self.bias)
        return out.to(x.dtype)


class FakeQuantConv2d(nn.Conv2d):
    """``nn.Conv2d`` with a fake-quantised weight (activations stay float, as at runtime)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, fake_quant_weight(self.weight), self.bias)


class FakeQuantConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with a fake-quantised weight (activations stay float)."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        output_padding = self._output_padding(
            x, output_size, self.stride, self.padding, self.kernel_size, 2, self.dilation
        )
        return F.conv_transpose2d(
            x, fake_quant_weight(self.weight), self.bias, self.stride, self.padding,
            output_padding, self.groups, self.dilation,
        )


_FAKE_FOR = {
    nn.Linear: FakeQuantLinear,
    nn.Conv2d: FakeQuantConv2d,
    nn.ConvTranspose2d: FakeQuantConvTranspose2d,
}
_PLAIN_FOR = {fake: plain for plain, fake in _FAKE_FOR.items()}
FAKE_QUANT_TYPES = tuple(_PLAIN_FOR)


def _plain_type(module: nn.Module) -> type[nn.Module] | None:
    for plain in _FAKE_FOR:
        if type(module) is plain or type(module) is _FAKE_FOR[plain]:
            return plain
    return None


def _retype(module: nn.Module, new_type: type[nn.Module]) -> nn.Module:
    """A ``new_type`` module sharing ``module``'s parameters, buffers and settings.

    Sharing (not copying) means an optimizer built before the swap still trains the right
    tensors.
    """
    new = new_type.__new__(new_type)
    new.__dict__.update(module.__dict__)
    for attr in ("_parameters", "_buffers", "_modules"):
        setattr(new, attr, dict(getattr(module, attr)))
    return new


# -- selection -------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuantSelection:
    """Which layers become INT8 (stored in ``model.json`` under ``int8.selection``).

    Attributes:
        encoder_linear: Image-encoder ``nn.Linear`` layers except ``attn.qkv``
            (``attn.proj``, ``mlp.lin1``, ``mlp.lin2``). qkv is never selected.
        encoder_neck: The encoder neck's 1x1 and 3x3 convs.
        encoder_patch_embed: The patch-embedding conv (default FP32).
        mask_decoder: Every Linear, Conv2d and ConvTranspose2d of the mask decoder.
        prompt_encoder: The prompt encoder's convs (``mask_downscaling``).
        exclude_pattern: Optional regex (``re.search`` on module names) kept FP32 on top.
    """

    encoder_linear: bool = True
    encoder_neck: bool = True
    encoder_patch_embed: bool = False
    mask_decoder: bool = True
    prompt_encoder: bool = True
    exclude_pattern: str | None = None

    def __post_init__(self) -> None:
        if self.exclude_pattern is not None:
            re.compile(self.exclude_pattern)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuantSelection:
        """Inverse of :meth:`to_dict`; unknown keys are an error (they could change the model)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelLoadError(f"INT8 selection has unknown keys {unknown}; known: {sorted(known)}")
        try:
            return cls(**dict(data))
        except (TypeError, re.error) as exc:
            raise ModelLoadError(f"INT8 selection is invalid: {exc}") from exc


_QKV = re.compile(r"(?:^|\.)attn\.qkv$")


def _component(name: str) -> tuple[str | None, str]:
    """(component, name inside it) for a module name such as ``mask_decoder.x.y``."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part in COMPONENTS:
            return part, ".".join(parts[i + 1 :])
    return None, name


def _wanted(name: str, module: nn.Module, selection: QuantSelection) -> bool:
    component, inner = _component(name)
    if component == "image_encoder":
        if isinstance(module, nn.Linear):
            return selection.encoder_linear and not _QKV.search(name)
        if inner.startswith("neck."):
            return selection.encoder_neck
        if inner.startswith("patch_embed."):
            return selection.encoder_patch_embed
        return False
    if component == "mask_decoder":
        return selection.mask_decoder
    if component == "prompt_encoder":
        return selection.prompt_encoder and isinstance(module, nn.Conv2d)
    return False


def select_layers(model: nn.Module, selection: QuantSelection | None = None) -> list[str]:
    """Names of the modules ``selection`` (default: the paper's) puts in INT8, module order.

    Only ``nn.Linear``, ``nn.Conv2d`` and ``nn.ConvTranspose2d`` (and their fake-quant
    subclasses) are candidates; attention qkv projections, AdaLoRA adapters and anything
    inside an adapter are never selected.
    """
    selection = selection or QuantSelection()
    exclude = re.compile(selection.exclude_pattern) if selection.exclude_pattern else None
    adapters = [n for n, m in model.named_modules() if isinstance(m, AdaLoraLinear)]
    names = []
    for name, module in model.named_modules():
        if _plain_type(module) is None:
            continue
        if any(name == a or name.startswith(a + ".") for a in adapters):
            continue
        if exclude is not None and exclude.search(name):
            continue
        if _wanted(name, module, selection):
            names.append(name)
    return names


def fake_quant_layers(model: nn.Module) -> list[str]:
    """Names of the fake-quant modules currently in ``model``."""
    return [n for n, m in model.named_modules() if isinstance(m, FAKE_QUANT_TYPES)]


def insert_fake_quant(
    model: nn.Module, selection: QuantSelection | Iterable[str] | None = None
) -> list[str]:
    """Swap the selected layers for fake-quant modules in place (Stage 2); returns their names.

    ``selection`` is a :class:`QuantSelection` (default: the paper's) or explicit module names.
    Parameters are shared, not copied, and state-dict keys do not change. Idempotent.
    """
    if selection is None or isinstance(selection, QuantSelection):
        names = select_layers(model, selection)
        setattr(model, SELECTION_ATTR, (selection or QuantSelection()).to_dict())
    else:
        names = list(selection)
        setattr(model, SELECTION_ATTR, None)
    for name in names:
        module = model.get_submodule(name)
        plain = _plain_type(module)
        if plain is None:
            raise ValueError(f"{name} is a {type(module).__name__}, not a quantisable layer")
        if type(module) is plain:
            set_submodule(model, name, _retype(module, _FAKE_FOR[plain]))
    return names


def remove_fake_quant(model: nn.Module) -> list[str]:
    """Turn every fake-quant module back into its plain module (parameters shared); returns
    the names that were fake-quantised. The recorded selection stays (see SELECTION_ATTR)."""
    names = fake_quant_layers(model)
    for name in names:
        module = model.get_submodule(name)
        set_submodule(model, name, _retype(module, _PLAIN_FOR[type(module)]))
    return names
