"""Export a trained (AdaLoRA, fake-quant or plain) SAM as an INT8 model folder.

Steps: copy the model; merge AdaLoRA into its FP32 qkv (exact); take the fake-quant layers as
the INT8 layers (what Stage 2 trained) or, on a model without fake-quant, the layers
``selection`` picks (default: the selection Stage 2 recorded on the model or in its folder's
``qat`` section, else the paper's); quantise them into :mod:`engine.quant.int8_runtime` modules;
write the state dict, where INT8 layers contribute ``<name>.weight_int8`` (int8) plus FP32
``weight_scale`` and ``bias``, and every other float tensor is stored as ``storage_dtype``
(FP32 or FP16).

Sizes (random weights; the ratio depends only on the architecture): compact 33.9 MB FP32 ->
11.9 MB INT8 (2.84x; 9.7 MB = 3.50x with the FP32 rest stored as FP16); ViT-B 375 MB ->
169 MB (2.21x, the paper's 2.24x; 119 MB = 3.15x with FP16). The compact model's weights are
48% mask decoder (all INT8); ViT-B's are 96% encoder, whose qkv (1/4 of each block) and 3.1M
position-embedding values stay FP32.

The loaded folder computes what the fake-quant model computed: same grid, same per-token
activation quantisation, and the integer matmul is exact (see :mod:`engine.quant.qat`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.adalora import adapter_modules, merge_adalora
from engine.models.folder import write_model_folder
from engine.models.structure import describe_adapters, describe_structure
from engine.quant import (
    INT8_TYPES,
    SELECTION_ATTR,
    QuantSelection,
    convert_to_int8,
    fake_quant_layers,
    select_layers,
)
from engine.sam import SamConfig

STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def int8_model(model: nn.Module, selection: QuantSelection | None = None) -> nn.Module:
    """An INT8 copy of ``model`` (``model`` is left as it was): adapters merged, selected or
    fake-quant layers replaced by runtime modules, on the CPU, in eval mode.

    Raises:
        ValueError: ``selection`` disagrees with the layers the model was fake-quantised on.
    """
    work = copy.deepcopy(model).cpu().eval()
    merge_adalora(work)
    trained = fake_quant_layers(work)
    if trained:
        if selection is not None and select_layers(work, selection) != trained:
            raise ValueError(
                "the model was fake-quantised on other layers than `selection` picks; "
                "export with selection=None to keep the trained layers"
            )
        layers = trained
        recorded = getattr(work, SELECTION_ATTR, None)
    else:
        trained_with = getattr(work, SELECTION_ATTR, None)
        if selection is None and isinstance(trained_with, dict):
            selection = QuantSelection.from_dict(trained_with)  # what Stage 2 fake-quantised
        layers = select_layers(work, selection)
        recorded = (selection or QuantSelection()).to_dict()
    if not layers:
        raise ValueError("no layer was selected for INT8")
    convert_to_int8(work, layers)
    setattr(work, SELECTION_ATTR, recorded)
    work.requires_grad_(False)
    return work


def int8_state_tensors(model: nn.Module, storage_dtype: str = "float32") -> dict[str, torch.Tensor]:
    """State dict for the weight file: INT8 layers' tensors as they are (int8 weight, FP32
    scale and bias), every other float tensor cast to ``storage_dtype``."""
    dtype = STORAGE_DTYPES[storage_dtype]
    keep = tuple(f"{n}." for n, m in model.named_modules() if isinstance(m, INT8_TYPES))
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if value.is_floating_point() and not key.startswith(keep):
            value = value.to(dtype)
        tensors[key] = value.contiguous().clone()
    return tensors


def float32_bytes(model: nn.Module) -> int:
    """Bytes of the model's tensors with every float (and INT8 weight) as FP32: the size of
    the same, merged model's FP32 folder without its header (the compression baseline)."""
    int8_names = {n for n, m in model.named_modules() if isinstance(m, INT8_TYPES)}
    total = 0
    for key, t in model.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        if owner in int8_names and leaf == "weight_scale":
            continue
        as_float = t.is_floating_point() or (owner in int8_names and leaf == "weight_int8")
        total += t.numel() * (4 if as_float else t.element_size())
    return total


def export_int8(
    model: nn.Module,
    config: SamConfig,
    out_dir: str | Path,
    extra_meta: dict[str, Any] | None = None,
    *,
    selection: QuantSelection | None = None,
    storage_dtype: str = "float32",
) -> Path:
    """Write ``model`` as an INT8 model folder at ``out_dir``; returns the folder path.

    ``model`` may carry AdaLoRA adapters (merged here; their config and rank pattern go to
    ``merged_adapter`` in model.json for provenance) and fake-quant layers (those become the
    INT8 layers). ``model`` itself is not modified.
    """
    if storage_dtype not in STORAGE_DTYPES:
        raise ValueError(f"storage_dtype must be one of {sorted(STORAGE_DTYPES)}")
    merged = describe_adapters(model) if adapter_modules(model) else None
    work = int8_model(model, selection)
    meta = dict(extra_meta or {})
    meta["config"] = config.to_dict()
    meta.update(describe_structure(work))
    meta["merged_adapter"] = merged
    meta["compression"] = {"float32_bytes": float32_bytes(work)}
    meta["weights"] = {"storage_dtype": storage_dtype}
    return write_model_folder(out_dir, int8_state_tensors(work, storage_dtype), meta)

