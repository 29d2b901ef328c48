"""The box head of a model folder: ``box_head.safetensors`` beside ``weights.safetensors``.

Why a file of its own: the head reads the image embedding but changes neither the embedding
nor any mask, so it is added to (or left out of) a model without touching its weights, its
sha256 or its ``model_hash`` (embedding caches stay valid). ``model.json`` records it under
``box_head``: file, sha256, architecture and what it was trained on. A missing or damaged head
never stops the model from loading: zero-click then falls back to the whole-image prompt and
``LoadedModel.box_head_problem`` says why.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engine.atomic import atomic_write_bytes, atomic_write_with
from engine.models.folder import MODEL_JSON, read_model_json, sha256_file
from engine.sam import BoxHead, box_head_from_arch

log = logging.getLogger(__name__)

BOX_HEAD_FILE = "box_head.safetensors"


def save_box_head(folder: str | Path, head: BoxHead, provenance: dict[str, Any] | None = None) -> Path:
    """Add (or replace) the box head of an existing model folder; the head file is written
    first, model.json last, each atomically, so a crash leaves the old description valid."""
    folder = Path(folder)
    meta = read_model_json(folder)
    tensors = {k: v.detach().cpu().float().contiguous() for k, v in head.state_dict().items()}
    target = folder / BOX_HEAD_FILE
    atomic_write_with(target, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "lungsam-box-head"}))
    meta["box_head"] = {
        "file": BOX_HEAD_FILE,
        "sha256": sha256_file(target),
        "arch": head.arch(),
        "provenance": provenance or {},
    }
    atomic_write_bytes(folder / MODEL_JSON, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return target


def load_box_head(folder: Path, meta: dict[str, Any]) -> tuple[BoxHead | None, str | None]:
    """(head, None), (None, None) for a folder without one, or (None, why) when it is damaged."""
    info = meta.get("box_head")
    if info is None:
        return None, None
    try:
        if not isinstance(info, dict) or info.get("file") != BOX_HEAD_FILE:
            raise ValueError("model.json's box_head entry is malformed")
        path = folder / BOX_HEAD_FILE
        if not path.is_file():
            raise ValueError(f"{BOX_HEAD_FILE} is missing")
        if sha256_file(path) != info.get("sha256"):
            raise ValueError(f"{BOX_HEAD_FILE} does not match model.json (sha256 differs)")
        head = box_head_from_arch(info.get("arch") or {})
        head.load_state_dict(load_file(str(path)), strict=True)
    except (ValueError, TypeError, KeyError, RuntimeError, OSError, SafetensorError) as exc:
        problem = f"{folder.name}: the box head cannot be used ({exc}); zero-click uses the whole image instead"
        log.warning("%s", problem)
        return None, problem
    return head.eval(), None
