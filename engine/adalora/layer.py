"""AdaLoRA adapters in SVD form around frozen ``nn.Linear`` layers (paper Eq. 1).

Each adapted layer computes::

    y = W x + b + scale * P diag(Lambda * m) Q x,      scale = alpha / r_max

with ``P`` (out, r_max), ``Q`` (r_max, in), singular values ``Lambda`` (r_max) and a
binary rank mask ``m`` (r_max). ``m`` is a buffer, never a parameter, so it cannot
receive gradient (paper Eq. 4). ``Lambda`` starts at zero, so wrapping leaves the model
output unchanged until training moves it. ``scale`` is fixed at ``alpha / r_max`` and is
*not* renormalised when components are pruned: pruning removes a component's
contribution, it does not inflate the others.

The split follows peft: this module holds the config and the layer;
:mod:`engine.adalora.model` wraps a model's layers and holds the orthogonal regulariser,
Stage 2 mask freezing, merging and rank-pattern I/O. Neither knows anything about
schedules; :mod:`engine.adalora.rank_allocator` decides which components live.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.errors import ModelLoadError

#: Paper default: only the image encoder's attention qkv projections.
QKV_PATTERN = r"(?:^|\.)blocks\.\d+\.attn\.qkv$"
#: Option: qkv plus the attention output projection and both MLP layers.
QKV_PROJ_MLP_PATTERN = r"(?:^|\.)blocks\.\d+\.(?:attn\.(?:qkv|proj)|mlp\.lin[12])$"


@dataclass(frozen=True)
class AdaLoraConfig:
    """Everything needed to rebuild the adapter structure (stored in ``model.json``).

    Attributes:
        r_max: Initial rank per adapted layer (paper: 48). Sizes P, Q and Lambda.
        target_rank: Average rank per layer after pruning (paper: 32); the allocator's
            global budget is ``target_rank * n_layers``.
        alpha: Adapter scale numerator; the update is multiplied by ``alpha / r_max``.
            The default 48 gives scale 1 at the paper's ``r_max``.
        init_std: Std of the normal init of P and Q (Lambda starts at zero).
        include_proj_mlp: Also adapt ``attn.proj``, ``mlp.lin1`` and ``mlp.lin2``.
        target_pattern: Custom module-name regex (``re.search``); overrides the preset
            chosen by ``include_proj_mlp`` when given.
        ortho_weight: Weight of :func:`orthogonal_regularizer` in the Stage 1 loss
            (paper: 0.003). The trainer applies it; the layer never does.
    """

    r_max: int = 48
    target_rank: int = 32
    alpha: float = 48.0
    init_std: float = 0.02
    include_proj_mlp: bool = False
    target_pattern: str | None = None
    ortho_weight: float = 0.003

    def __post_init__(self) -> None:
        if self.r_max < 1:
            raise ValueError(f"AdaLoRA r_max must be >= 1, got {self.r_max}")
        if not 0 <= self.target_rank <= self.r_max:
            raise ValueError(
                f"AdaLoRA target_rank must lie in [0, r_max={self.r_max}], got {self.target_rank}"
            )
        if self.target_pattern is not None:
            re.compile(self.target_pattern)

    @property
    def scale(self) -> float:
        """Multiplier of the low-rank update, ``alpha / r_max``."""
        return self.alpha / self.r_max

    def target_regex(self) -> str:
        """The module-name regex that selects the layers to wrap."""
        if self.target_pattern is not None:
            return self.target_pattern
        return QKV_PROJ_MLP_PATTERN if self.include_proj_mlp else QKV_PATTERN


def adalora_config_to_dict(config: AdaLoraConfig) -> dict[str, Any]:
    """JSON-ready dict of ``config`` for ``model.json``."""
    return dataclasses.asdict(config)


def adalora_config_from_dict(data: Mapping[str, Any]) -> AdaLoraConfig:
    """Inverse of :func:`adalora_config_to_dict`; unknown keys are an error, not ignored,
    because silently dropping one could rebuild a different adapter than was trained."""
    known = {f.name for f in dataclasses.fields(AdaLoraConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ModelLoadError(
            f"AdaLoRA config has unknown keys {unknown}; known keys: {sorted(known)}"
        )
    try:
        return AdaLoraConfig(**dict(data))
    except (TypeError, ValueError, re.error) as exc:
        raise ModelLoadError(f"AdaLoRA config is invalid: {exc}") from exc


class AdaLoraLinear(nn.Module):
    """A frozen ``nn.Linear`` plus an SVD-form low-rank update.

    Args:
        base: The pretrained layer; kept as ``self.base`` so its tensors stay reachable as
            ``<name>.base.weight`` / ``<name>.base.bias``, and frozen here.
        r_max: Number of singular triplets (columns of P, rows of Q).
        alpha: Scale numerator, see :class:`AdaLoraConfig`.
        init_std: Std of the normal init of P and Q.

    Shapes: input ``(..., in_features)`` -> output ``(..., out_features)``. Adapter
    tensors are FP32 whatever the base dtype (the paper keeps P, Q, Lambda in FP32).
    """

    def __init__(self, base: nn.Linear, r_max: int, alpha: float, init_std: float = 0.02) -> None:
        super().__init__()
        self.base = base
        base.requires_grad_(False)
        self.in_features = base.in_features
        self.out_features = base.out_features
        self.r_max = r_max
        self.scale = alpha / r_max
        device = base.weight.device
        f32 = torch.float32
        self.lora_P = nn.Parameter(
            torch.randn(base.out_features, r_max, device=device, dtype=f32) * init_std
        )
        self.lora_Q = nn.Parameter(
            torch.randn(r_max, base.in_features, device=device, dtype=f32) * init_std
        )
        self.lora_lambda = nn.Parameter(torch.zeros(r_max, device=device, dtype=f32))
        self.register_buffer("rank_mask", torch.ones(r_max, device=device, dtype=f32))

    def effective_lambda(self) -> torch.Tensor:
        """``Lambda * m``, shape (r_max,). Masked entries get exactly zero gradient."""
        return self.lora_lambda * self.rank_mask

    def delta_weight(self) -> torch.Tensor:
        """``scale * P diag(Lambda * m) Q``, shape (out, in), FP32."""
        return (self.lora_P * self.effective_lambda()) @ self.lora_Q * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        # Low-rank path without forming delta W: (x Q^T) is (..., r_max), cheap.
        h = (x.to(self.lora_Q.dtype) @ self.lora_Q.t()) * self.effective_lambda()
        return out + (h @ self.lora_P.t() * self.scale).to(out.dtype)

    def set_rank_mask(self, mask: torch.Tensor) -> None:
        """Overwrite ``m`` in place (keeps the buffer object, device and dtype)."""
        mask = torch.as_tensor(mask).reshape(-1)
        if mask.numel() != self.r_max:
            raise ValueError(f"rank mask needs {self.r_max} entries, got {mask.numel()}")
        if not torch.all((mask == 0) | (mask == 1)):
            raise ValueError("rank mask entries must be 0 or 1")
        with torch.no_grad():
            self.rank_mask.copy_(mask.to(self.rank_mask))

    def rank(self) -> int:
        """Number of live components, ``sum(m)``."""
        return int(self.rank_mask.sum().item())

    def extra_repr(self) -> str:
        return f"r_max={self.r_max}, rank={self.rank()}, scale={self.scale:g}"
