"""Module surgery a model folder records: AdaLoRA adapters and INT8 layers.

Saving describes the structure of a live model; loading rebuilds that structure on a fresh
SAM before the weights are loaded, so the state-dict keys match exactly.

model.json sections (both optional, ``null`` when absent; both enter the model hash):

``adapter``: ``{"config": adalora_config_to_dict(...), "rank_pattern": {layer: [0/1, ...]}}``.
    Loading wraps the layers the config selects and restores the rank masks (the weights then
    bring P, Q, Lambda and the base weights).
``int8``: ``{"layers": [module names], "scheme": {...}, "selection": QuantSelection dict or
    null}``. Loading replaces each named layer by its :mod:`engine.quant.int8_runtime` module, whose
    state-dict keys are ``<name>.weight_int8`` (int8), ``<name>.weight_scale`` and
    ``<name>.bias`` (FP32).

``mask_styles``: the style names by output token (see :mod:`engine.sam.styles`), absent or
    ``null`` for a model with one style. Names only: they change no arithmetic.

``qat``: ``{"layers": [...], "selection": ...}`` when the model was saved under Stage 2
    fake-quant. Fake-quant modules are not structure: they keep the plain keys, the folder holds
    the float weights and loads as a plain model (same function as any float model with these
    weights, so this section is not part of the model hash). Loading only remembers the
    selection on the model, so ``export_int8`` of the loaded model quantises the trained layers
    (call ``insert_fake_quant`` again to resume QAT).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from torch import nn

from engine.adalora import (
    AdaLoraConfig,
    AdaLoraLinear,
    adalora_config_from_dict,
    adalora_config_to_dict,
    adapter_modules,
    apply_rank_pattern,
    rank_pattern,
    wrap_adalora,
)
from engine.errors import ModelLoadError
from engine.quant import (
    INT8_TYPES,
    QUANTIZABLE,
    SELECTION_ATTR,
    Int8Linear,
    QuantSelection,
    fake_quant_layers,
    int8_layers,
    prepare_int8,
)
from engine.sam import MASK_STYLES_ATTR, check_style_names, max_styles

#: Attribute holding the :class:`AdaLoraConfig` a model was wrapped with (set on load and by
#: :func:`remember_adalora_config`), so fields the modules cannot tell (``target_rank``,
#: ``ortho_weight``, ``init_std``) survive a save.
ADAPTER_CONFIG_ATTR = "lungsam_adalora_config"

#: Version 1 of the INT8 numerics (see :mod:`engine.quant.qat`). A folder with another version
#: is refused rather than run with different arithmetic.
INT8_SCHEME: dict[str, Any] = {
    "version": 1,
    "weight": {
        "dtype": "int8", "granularity": "per_tensor", "symmetric": True, "qmax": 127,
        "scale": "max_abs/127", "rounding": "half_to_even",
    },
    "linear_input": {
        "dtype": "int8", "granularity": "per_token", "dynamic": True, "symmetric": True,
        "qmax": 127, "scale": "max_abs/127", "rounding": "half_to_even",
    },
    "conv_input": "float",
    "bias": "float32",
}


def remember_adalora_config(model: nn.Module, config: AdaLoraConfig) -> None:
    """Record the config ``model`` was wrapped with so a saved folder keeps all its fields."""
    setattr(model, ADAPTER_CONFIG_ATTR, config)


def describe_structure(model: nn.Module) -> dict[str, Any]:
    """The ``adapter``, ``int8`` and ``qat`` sections of model.json for ``model`` as it is now."""
    return {
        "adapter": describe_adapters(model), "int8": describe_int8(model), "qat": describe_qat(model),
        "mask_styles": describe_mask_styles(model),
    }


def describe_mask_styles(model: nn.Module) -> list[str] | None:
    """Style names when the model has more than the default one, else None."""
    styles = getattr(model, MASK_STYLES_ATTR, None)
    return list(styles) if styles else None


def describe_adapters(model: nn.Module) -> dict[str, Any] | None:
    """``{"config", "rank_pattern"}`` of the adapters in ``model``, or None without adapters."""
    adapters = adapter_modules(model)
    if not adapters:
        return None
    config = _adapter_config(model, adapters)
    return {"config": adalora_config_to_dict(config), "rank_pattern": rank_pattern(model)}


def describe_int8(model: nn.Module) -> dict[str, Any] | None:
    """``{"layers", "scheme", "selection"}`` of the INT8 runtime layers, or None without any."""
    layers = int8_layers(model)
    if not layers:
        return None
    return {"layers": layers, "scheme": INT8_SCHEME, "selection": getattr(model, SELECTION_ATTR, None)}


def describe_qat(model: nn.Module) -> dict[str, Any] | None:
    """``{"layers", "selection"}`` of the fake-quant layers, or None when there are none."""
    layers = fake_quant_layers(model)
    if not layers:
        return None
    return {"layers": layers, "selection": getattr(model, SELECTION_ATTR, None)}


def _linear_names(model: nn.Module) -> list[str]:
    """Names ``wrap_adalora`` could target on a fresh model (where INT8 layers are still
    ``nn.Linear``): Linear, INT8 Linear and adapter layers, not adapter internals."""
    return [
        n for n, m in model.named_modules()
        if isinstance(m, (nn.Linear, AdaLoraLinear, Int8Linear)) and not n.endswith(".base")
    ]


def _adapter_config(model: nn.Module, adapters: dict[str, AdaLoraLinear]) -> AdaLoraConfig:
    """A config that rebuilds exactly these adapters on a fresh model.

    The stored config is used when it still fits; otherwise r_max and alpha come from the
    modules and the target pattern from their names (a preset if one matches, else the names).
    """
    r_max = {m.r_max for m in adapters.values()}
    scales = {m.scale for m in adapters.values()}
    if len(r_max) != 1 or len(scales) != 1:
        raise ValueError(
            "adapters with different r_max or scale cannot be described by one AdaLoRA config"
        )
    (r,), (scale,) = r_max, scales
    stored = getattr(model, ADAPTER_CONFIG_ATTR, None)
    base = stored if isinstance(stored, AdaLoraConfig) else AdaLoraConfig(r_max=r, target_rank=min(32, r))
    alpha = base.alpha if base.alpha / r == scale else scale * r
    config = dataclasses.replace(
        base, r_max=r, alpha=alpha, target_rank=min(base.target_rank, r)
    )
    wanted = list(adapters)
    candidates = _linear_names(model)

    def selects(cfg: AdaLoraConfig) -> bool:
        pattern = re.compile(cfg.target_regex())
        return [n for n in candidates if pattern.search(n)] == wanted

    if selects(config):
        return config
    for include in (False, True):
        preset = dataclasses.replace(config, target_pattern=None, include_proj_mlp=include)
        if selects(preset):
            return preset
    names = "|".join(re.escape(n) for n in wanted)
    return dataclasses.replace(config, target_pattern=f"^(?:{names})$", include_proj_mlp=False)


def prepare_structure(model: nn.Module, meta: dict[str, Any]) -> None:
    """Wrap/replace modules of a freshly built SAM as ``meta`` says, before loading weights.

    Raises:
        ModelLoadError: a section does not fit this model or uses unknown numerics.
    """
    styles = meta.get("mask_styles")
    if styles is not None:
        try:
            setattr(model, MASK_STYLES_ATTR, check_style_names(styles, max_styles(model)))
        except ValueError as exc:
            raise ModelLoadError(f"model.json 'mask_styles': {exc}") from exc
    adapter = meta.get("adapter")
    if adapter:
        _prepare_adapters(model, adapter)
    int8 = meta.get("int8")
    if int8:
        _prepare_int8(model, int8)
    qat = meta.get("qat")
    if qat and not int8:
        selection = qat.get("selection") if isinstance(qat, dict) else None
        if selection is not None:
            QuantSelection.from_dict(selection)  # validates
        setattr(model, SELECTION_ATTR, selection)


def _prepare_adapters(model: nn.Module, section: Any) -> None:
    if not isinstance(section, dict) or "config" not in section or "rank_pattern" not in section:
        raise ModelLoadError("model.json 'adapter' section needs 'config' and 'rank_pattern'")
    config = adalora_config_from_dict(section["config"])
    try:
        wrap_adalora(model, config)
    except ValueError as exc:
        raise ModelLoadError(f"AdaLoRA adapters do not fit the model: {exc}") from exc
    apply_rank_pattern(model, section["rank_pattern"])
    remember_adalora_config(model, config)


def _prepare_int8(model: nn.Module, section: Any) -> None:
    if not isinstance(section, dict) or not isinstance(section.get("layers"), list):
        raise ModelLoadError("model.json 'int8' section needs a 'layers' list")
    version = (section.get("scheme") or {}).get("version")
    if version != INT8_SCHEME["version"]:
        raise ModelLoadError(
            f"INT8 scheme version {version!r} is not supported (this LungSAM runs version "
            f"{INT8_SCHEME['version']}); please update"
        )
    layers = section["layers"]
    for name in layers:
        try:
            module = model.get_submodule(name) if isinstance(name, str) else None
        except AttributeError:
            module = None
        if not isinstance(module, QUANTIZABLE + INT8_TYPES):
            raise ModelLoadError(f"INT8 layer {name!r} is not a Linear/Conv layer of this model")
    selection = section.get("selection")
    if selection is not None:
        QuantSelection.from_dict(selection)  # validates
    prepare_int8(model, layers)
    setattr(model, SELECTION_ATTR, selection)
