"""Our model format: a folder with ``model.json`` and ``weights.safetensors``.

safetensors cannot carry code, the JSON says everything needed to rebuild the module
(architecture, adapters, INT8 layers) and the recorded sha256 catches truncated or swapped
weight files before they reach a clinician's screen.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from segment_anything.modeling import Sam

from engine.atomic import atomic_directory
from engine.errors import ModelLoadError
from engine.sam import SamConfig, build_sam, load_state_into

FORMAT_NAME = "lungsam-model"
FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS_FILE = "weights.safetensors"


@dataclass
class LoadedModel:
    """A ready-to-run SAM plus what we know about it.

    ``model_hash`` identifies the weights (and architecture): caches of image embeddings are
    keyed by it so a new model never reuses a stale embedding.
    """

    sam: Sam
    config: SamConfig
    model_hash: str
    source: str
    meta: dict[str, Any] = field(default_factory=dict)
    box_head: torch.nn.Module | None = None  # where the lungs are, for zero-click (engine.sam.box_head)
    box_head_problem: str | None = None  # why a recorded box head could not be loaded

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or Path(self.source).name)

    @property
    def is_int8(self) -> bool:
        return bool(self.meta.get("int8"))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_hash_from(weights_sha256: str, config: SamConfig, meta: dict[str, Any]) -> str:
    """Hash of weights + architecture + structure (adapters, INT8) for cache keys."""
    ident = json.dumps(
        {"w": weights_sha256, "c": config.to_dict(), "a": meta.get("adapter"), "q": meta.get("int8")},
        sort_keys=True,
    )
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def state_tensors(model: torch.nn.Module, storage_dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of the state dict, floats cast to ``storage_dtype``."""
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.to(storage_dtype)
        tensors[key] = value.contiguous().clone()
    return tensors


def write_model_folder(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write tensors + metadata as one atomic folder; returns the folder path."""
    path = Path(path)
    meta = dict(meta)
    meta.setdefault("name", path.name)
    meta["format"] = FORMAT_NAME
    meta["format_version"] = FORMAT_VERSION
    with atomic_directory(path) as tmp:
        weights = tmp / WEIGHTS_FILE
        save_file(tensors, str(weights), metadata={"format": FORMAT_NAME})
        meta["weights"] = {
            "file": WEIGHTS_FILE,
            "sha256": sha256_file(weights),
            "bytes": weights.stat().st_size,
            "storage_dtype": meta.get("weights", {}).get("storage_dtype", "float32"),
        }
        (tmp / MODEL_JSON).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def save_sam_folder(
    path: str | Path,
    sam: torch.nn.Module,
    config: SamConfig,
    *,
    storage_dtype: str = "float32",
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Save an FP32 (or FP16-stored) SAM, with adapters if it has any, as a model folder."""
    if storage_dtype not in ("float32", "float16"):
        raise ValueError("storage_dtype must be float32 or float16")
    from engine.models.structure import describe_structure

    meta = dict(extra_meta or {})
    meta["config"] = config.to_dict()
    meta.update(describe_structure(sam))
    meta["weights"] = {"storage_dtype": storage_dtype}
    tensors = state_tensors(sam, getattr(torch, storage_dtype))
    return write_model_folder(path, tensors, meta)


def read_model_json(path: str | Path) -> dict[str, Any]:
    """Parse and sanity-check ``model.json`` of a model folder."""
    path = Path(path)
    meta_path = path / MODEL_JSON
    if not meta_path.is_file():
        raise ModelLoadError(f"{path}: not a model folder (no {MODEL_JSON})")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{meta_path}: model.json is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ModelLoadError(f"{meta_path}: not a LungSAM model description")
    version = meta.get("format_version", 0)
    if not isinstance(version, int):
        raise ModelLoadError(f"{meta_path}: format_version must be a whole number, not {version!r}")
    if version > FORMAT_VERSION:
        raise ModelLoadError(
            f"{path.name}: made by a newer LungSAM (format {version}); please update"
        )
    if not isinstance(meta.get("weights", {}), dict):
        raise ModelLoadError(f"{meta_path}: the 'weights' entry must be an object")
    return meta


def _weights_path(path: Path, weights_info: dict[str, Any]) -> Path:
    """The weight file named in model.json; only a plain file name inside the folder is allowed."""
    name = weights_info.get("file", WEIGHTS_FILE)
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ModelLoadError(
            f"{path.name}: the weight file {name!r} in model.json must be a file inside the model folder"
        )
    return path / name


def _config_from(meta: dict[str, Any], name: str) -> SamConfig:
    """The architecture in model.json; wrong types become a ModelLoadError, not a TypeError."""
    data = meta.get("config")
    if not isinstance(data, dict):
        raise ModelLoadError(f"{name}: model.json has no 'config' object describing the architecture")
    try:
        return SamConfig.from_dict(data)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{name}: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ModelLoadError(f"{name}: model.json 'config' is malformed ({exc})") from exc


def _check_size_fits(config: SamConfig, meta: dict[str, Any], tensors: dict[str, torch.Tensor], name: str) -> None:
    """Refuse a config that needs more numbers than the weight file holds, before building it.

    The architecture is built on the ``meta`` device (shapes only, no memory), so a hostile
    model.json (say a 10^12-parameter encoder) costs nothing. Adapters and INT8 layers only
    add tensors or keep the count, so a valid folder always holds at least as many.
    """
    try:
        with torch.device("meta"):
            skeleton = build_sam(config)
    except (TypeError, ValueError, ArithmeticError, RuntimeError) as exc:
        raise ModelLoadError(f"{name}: model.json describes a model that cannot be built ({exc})") from exc
    needed = sum(value.numel() for value in skeleton.state_dict().values())
    held = sum(value.numel() for value in tensors.values())
    if needed <= held:
        return
    if not meta.get("adapter") and not meta.get("int8"):
        load_state_into(skeleton, tensors, name)  # raises, naming the keys that do not fit
    raise ModelLoadError(
        f"{name}: weights do not fit the model: model.json describes {needed:,} weights, "
        f"the weight file holds {held:,}"
    )


def _build(config: SamConfig, meta: dict[str, Any], name: str) -> Sam:
    """``build_sam`` + the recorded structure; every failure is a ModelLoadError naming the folder."""
    from engine.models.structure import prepare_structure

    try:
        sam = build_sam(config)
        prepare_structure(sam, meta)
        return sam
    except ModelLoadError as exc:
        message = str(exc)
        raise ModelLoadError(message if message.startswith(f"{name}: ") else f"{name}: {message}") from exc
    except MemoryError as exc:
        raise ModelLoadError(f"{name}: not enough memory to build this model") from exc
    except (TypeError, ValueError, KeyError, AttributeError, AssertionError, ArithmeticError,
            RuntimeError) as exc:
        raise ModelLoadError(f"{name}: model.json describes a model that cannot be built ({exc})") from exc


def load_model_folder(path: str | Path, verify_hash: bool = True) -> LoadedModel:
    """Rebuild the model described by a folder; every failure is a :class:`ModelLoadError`."""
    path = Path(path)
    meta = read_model_json(path)
    config = _config_from(meta, path.name)
    weights_info = meta.get("weights") or {}
    weights = _weights_path(path, weights_info)
    if not weights.is_file():
        raise ModelLoadError(f"{path.name}: weight file {weights.name} is missing")
    digest = sha256_file(weights)
    if verify_hash and weights_info.get("sha256") and digest != weights_info["sha256"]:
        raise ModelLoadError(
            f"{path.name}: weight file does not match model.json (sha256 differs): "
            "the file is incomplete or was replaced"
        )
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"{path.name}: weight file is truncated or corrupt ({exc})") from exc
    _check_size_fits(config, meta, tensors, path.name)
    sam = _build(config, meta, path.name)
    load_state_into(sam, tensors, path.name)
    sam.eval()
    from engine.models.box_head_file import load_box_head

    box_head, box_head_problem = load_box_head(path, meta)
    return LoadedModel(
        sam=sam,
        config=config,
        model_hash=model_hash_from(digest, config, meta),
        source=str(path),
        meta=meta,
        box_head=box_head,
        box_head_problem=box_head_problem,
    )
