"""AdaLoRA adapters in SVD form around frozen ``nn.Linear`` layers (paper Eq. 1).

Each adapted layer computes::

    y = W x + b + scale * P diag(Lambda * m) Q x,      scale = alpha / r_max

with ``P`` (out, r_max), ``Q`` (r_max, in), singular values ``Lambda`` (r_max) and a
binary rank mask ``m`` (r_max). ``m`` is a buffer, never a parameter, so it cannot
receive gradient (paper Eq. 4). ``Lambda`` starts at zero, so wrapping leaves the model
output unchanged until training moves it. ``scale`` is fixed at ``alpha / r_max`` and is
*not* renormalised when components are pruned: pruning removes a component's
contribution, it does not inflate the others.

The split follows peft: this module holds the config, the layer, wrapping, the
orthogonal regulariser, Stage 2 mask freezing, merging and rank-pattern I/O. It knows
nothing about schedules; :mod:`engine.rank_allocator` decides which components live.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

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


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def wrap_adalora(model: nn.Module, config: AdaLoraConfig) -> list[str]:
    """Replace every ``nn.Linear`` whose name matches ``config.target_regex()`` by an
    :class:`AdaLoraLinear` (in place). Only the wrapped base layers are frozen; freezing
    the rest of the model is the trainer's decision.

    Returns:
        The wrapped module names, in ``named_modules`` order.

    Raises:
        ModelLoadError: nothing matched, i.e. the config does not fit this model.
    """
    pattern = re.compile(config.target_regex())
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and pattern.search(name) and not name.endswith(".base")
    ]
    if not names:
        raise ModelLoadError(
            f"no nn.Linear in {type(model).__name__} matches the AdaLoRA target pattern "
            f"{config.target_regex()!r}"
        )
    for name in names:
        base = model.get_submodule(name)
        _set_submodule(
            model, name, AdaLoraLinear(base, config.r_max, config.alpha, config.init_std)
        )
    return names


def adapter_modules(model: nn.Module) -> dict[str, AdaLoraLinear]:
    """Name -> adapter for every :class:`AdaLoraLinear` in ``model`` (module order)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, AdaLoraLinear)}


def _require_adapters(model: nn.Module) -> dict[str, AdaLoraLinear]:
    adapters = adapter_modules(model)
    if not adapters:
        raise ValueError(f"{type(model).__name__} has no AdaLoRA adapters; call wrap_adalora first")
    return adapters


def adalora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """P, Q and Lambda of every adapter (the Stage 1 encoder parameter group)."""
    return [p for m in adapter_modules(model).values() for p in (m.lora_P, m.lora_Q, m.lora_lambda)]


def lambda_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Lambda of every adapter (the only adapter tensors trained in Stage 2)."""
    return [m.lora_lambda for m in adapter_modules(model).values()]


def count_trainable(model: nn.Module) -> int:
    """Number of scalar parameters with ``requires_grad`` (what the paper's tables count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def orthogonal_regularizer(model: nn.Module) -> torch.Tensor:
    """Mean over adapters of ``||P^T P - I||_F^2 + ||Q Q^T - I||_F^2``, a 0-dim tensor.

    Identities are ``r_max x r_max`` and masked components are included, as in AdaLoRA:
    keeping the full bases orthonormal costs nothing and keeps a pruned component from
    leaking into the live subspace. The caller multiplies by ``config.ortho_weight``.

    Raises:
        ValueError: the model has no adapters (a silent zero would hide a wiring bug).
    """
    terms = []
    for m in _require_adapters(model).values():
        eye = torch.eye(m.r_max, device=m.lora_P.device, dtype=m.lora_P.dtype)
        terms.append(
            (m.lora_P.t() @ m.lora_P - eye).pow(2).sum()
            + (m.lora_Q @ m.lora_Q.t() - eye).pow(2).sum()
        )
    return torch.stack(terms).mean()


@torch.no_grad()
def zero_masked_lambda(model: nn.Module) -> None:
    """Set ``Lambda_i = 0`` wherever ``m_i = 0``. Idempotent; cheap enough to call after
    every optimizer step."""
    for m in adapter_modules(model).values():
        m.lora_lambda.mul_(m.rank_mask)


def freeze_rank_masks(
    model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> RemovableHandle | None:
    """Stage 2: fix the rank pattern and make masked singular values exactly zero.

    Masks are buffers, so no optimizer ever changes them. The forward uses
    ``Lambda * m``, so a masked ``Lambda_i`` gets exactly zero gradient and never
    influences the output. Once set to zero here it also stays zero under a *fresh*
    optimizer (Adam's update for zero grad and zero state is 0, decay of 0 is 0). An
    optimizer that already holds momentum from Stage 1 could still move it, so when
    ``optimizer`` is given, its per-entry state for Lambda (exp_avg, momentum_buffer,
    ...) is zeroed at masked entries and a step post-hook re-zeroes masked Lambda after
    every ``optimizer.step()``.

    Returns:
        The hook handle when ``optimizer`` is given (``.remove()`` detaches it), else None.
    """
    adapters = _require_adapters(model)
    zero_masked_lambda(model)
    if optimizer is None:
        return None
    with torch.no_grad():
        for m in adapters.values():
            state = optimizer.state.get(m.lora_lambda, {})
            for value in state.values():
                if torch.is_tensor(value) and value.shape == m.lora_lambda.shape:
                    value.mul_(m.rank_mask.to(value))

    def _rezero(_opt: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        zero_masked_lambda(model)

    return optimizer.register_step_post_hook(_rezero)


def rank_pattern(model: nn.Module) -> dict[str, list[int]]:
    """Module name -> 0/1 mask list; JSON-serialisable for ``model.json``."""
    return {n: [int(v) for v in m.rank_mask.tolist()] for n, m in adapter_modules(model).items()}


def apply_rank_pattern(model: nn.Module, pattern: Mapping[str, list[int]]) -> None:
    """Set every adapter's mask from ``pattern`` (as produced by :func:`rank_pattern`).

    Raises:
        ModelLoadError: the pattern's layer names or lengths do not match the model.
    """
    adapters = adapter_modules(model)
    missing, extra = sorted(set(adapters) - set(pattern)), sorted(set(pattern) - set(adapters))
    if missing or extra:
        raise ModelLoadError(
            f"rank pattern does not fit the model: layers without a pattern {missing}, "
            f"pattern entries without a layer {extra}"
        )
    for name, m in adapters.items():
        mask = torch.tensor(pattern[name], dtype=torch.float32)
        try:
            m.set_rank_mask(mask)
        except ValueError as exc:
            raise ModelLoadError(f"rank pattern for {name!r}: {exc}") from exc


@torch.no_grad()
def merge_adalora(model: nn.Module) -> None:
    """Fold every adapter into a plain ``nn.Linear`` (in place) for export/INT8.

    ``W' = W + scale * P diag(Lambda * m) Q`` is computed in FP32 and cast back to the
    base dtype; the new layer is frozen like the base was. Idempotent on merged models.
    """
    for name, m in adapter_modules(model).items():
        base = m.base
        merged = nn.Linear(
            m.in_features,
            m.out_features,
            bias=base.bias is not None,
            device=base.weight.device,
            dtype=base.weight.dtype,
        )
        merged.weight.copy_((base.weight.float() + m.delta_weight()).to(base.weight.dtype))
        if base.bias is not None:
            merged.bias.copy_(base.bias)
        merged.requires_grad_(False)
        _set_submodule(model, name, merged)
