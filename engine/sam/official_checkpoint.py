"""Read official SAM / MedSAM ``.pth`` checkpoints without ever running pickled code.

``torch.load(weights_only=True)`` only rebuilds tensors and plain containers, so a file that
would execute code when unpickled is refused instead of run.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch
from torch import nn

from engine.errors import ModelLoadError
from engine.sam.config import SamConfig, named_configs

_BLOCK_KEY = re.compile(r"^image_encoder\.blocks\.(\d+)\.")
# Nested layouts seen in fine-tuning repositories that save more than the bare state dict.
_WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load the tensors of a ``.pth`` checkpoint safely, with a clear error for bad files."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"{path.name}: refused to load - the file contains Python objects other than "
            f"weights (it could run code); only plain weight checkpoints are accepted ({exc})"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"{path.name}: not a readable PyTorch checkpoint (truncated or corrupt file?)"
        ) from exc
    return _unwrap(obj, path)


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], dict) and "image_encoder.pos_embed" not in obj:
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ModelLoadError(f"{path.name}: the checkpoint holds no state dict")
    tensors = {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if "image_encoder.pos_embed" not in tensors:
        raise ModelLoadError(
            f"{path.name}: not a SAM checkpoint (no image_encoder.pos_embed; "
            f"first keys: {', '.join(list(tensors)[:3]) or 'none'})"
        )
    return tensors


def infer_config(state: dict[str, torch.Tensor], model_type: str | None = None) -> SamConfig:
    """Architecture from tensor shapes, so SAM variants of any size load without a preset.

    ``model_type`` (vit_b, vit_l, vit_h, medsam) picks the preset; the shapes must then agree.
    """
    pos = state["image_encoder.pos_embed"]  # 1 x H/p x W/p x C
    patch = state["image_encoder.patch_embed.proj.weight"]  # C x 3 x p x p
    embed_dim, patch_size = int(patch.shape[0]), int(patch.shape[-1])
    grid = int(pos.shape[1])
    depth = 1 + max(int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k)))
    global_idx, window = [], 14
    for i in range(depth):
        rel = state.get(f"image_encoder.blocks.{i}.attn.rel_pos_h")
        if rel is None:
            continue
        if int(rel.shape[0]) == 2 * grid - 1:
            global_idx.append(i)
        else:
            window = (int(rel.shape[0]) + 1) // 2
    rel = state.get("image_encoder.blocks.0.attn.rel_pos_h")  # (2 * size - 1) x head_dim
    heads = embed_dim // int(rel.shape[1]) if rel is not None else max(1, embed_dim // 64)
    prompt_dim = int(state["prompt_encoder.no_mask_embed.weight"].shape[1])
    mlp = state.get("mask_decoder.transformer.layers.0.mlp.lin1.weight")
    inferred = dict(
        encoder_num_heads=heads,
        img_size=grid * patch_size,
        patch_size=patch_size,
        encoder_embed_dim=embed_dim,
        encoder_depth=depth,
        encoder_global_attn_indexes=tuple(global_idx),
        encoder_window_size=window,
        encoder_mlp_ratio=state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0] / embed_dim,
        prompt_embed_dim=prompt_dim,
        mask_in_chans=int(state["prompt_encoder.mask_downscaling.3.weight"].shape[0]),
        decoder_mlp_dim=int(mlp.shape[0]) if mlp is not None else 2048,
        iou_head_hidden_dim=int(state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
    )
    if model_type is not None:
        base = named_configs().get(model_type)
        if base is None:
            raise ModelLoadError(
                f"unknown checkpoint type '{model_type}' (known: vit_b, vit_l, vit_h, medsam)"
            )
        mismatched = [k for k, v in inferred.items() if getattr(base, k) != v]
        if mismatched:
            raise ModelLoadError(
                f"the checkpoint is not a {model_type} model: its "
                + ", ".join(f"{k}={inferred[k]} (expected {getattr(base, k)})" for k in mismatched)
            )
        return base
    name = next(
        (p.name for p in named_configs().values() if p.normalization == "sam"
         and all(getattr(p, k) == v for k, v in inferred.items())),
        "custom",
    )
    return SamConfig(name=name, **inferred)


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` with a readable message listing what does not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} with wrong shape (e.g. {'; '.join(wrong_shape[:2])})")
        raise ModelLoadError(f"{source}: weights do not fit the model: " + ", ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
