"""AdaLoRA on a whole model: wrap its ``nn.Linear`` layers in :class:`AdaLoraLinear`, and the
operations the stages need on all adapters at once (parameter groups, the orthogonal
regulariser, Stage 2 mask freezing, rank-pattern I/O, merging for export).

The layer itself and its config are in :mod:`engine.adalora.layer`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from engine.adalora.layer import AdaLoraConfig, AdaLoraLinear
from engine.errors import ModelLoadError
from engine.modules import set_submodule


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
        set_submodule(
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
        set_submodule(model, name, merged)
