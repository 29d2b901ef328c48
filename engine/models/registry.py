"""Find and load models by name, folder or official checkpoint file.

Names resolve to folders under ``resources/models`` (shipped) and the user's model folder
(trained versions); ``.pth`` files are official SAM/MedSAM checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ModelLoadError
from engine.models.folder import (
    MODEL_JSON,
    LoadedModel,
    load_model_folder,
    model_hash_from,
    read_model_json,
    save_sam_folder,
    sha256_file,
)
from engine.sam import build_sam, infer_config, load_state_into, read_state_dict

DEFAULT_MARKER = "DEFAULT"
SHIPPED_BASE = "lungsam-compact-base"
"""The shipped FP32 model (no adapters) that fine-tunes start from when none is named."""


RESOURCES_PACKAGE = "lungsam_resources"
"""What the checkout's ``resources/`` folder is called once installed from a wheel."""


def resources_dir() -> Path:
    """The shipped resources (models, samples): ``LUNGSAM_RESOURCES`` (tests), else the
    checkout's ``resources/`` beside the packages, else the installed ``lungsam_resources``
    package (``pip install .`` or the wheel, outside any checkout)."""
    env = os.environ.get("LUNGSAM_RESOURCES")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "resources"
    if (checkout / "models").is_dir():
        return checkout
    import importlib.util

    spec = importlib.util.find_spec(RESOURCES_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return checkout


def shipped_models_dir() -> Path:
    return resources_dir() / "models"


def user_models_dir() -> Path:
    """Where trained and imported models go (``LUNGSAM_MODELS`` overrides)."""
    env = os.environ.get("LUNGSAM_MODELS")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "lungsam" / "models"


@dataclass(frozen=True)
class ModelEntry:
    """A complete model folder the user can pick."""

    name: str
    path: Path
    meta: dict[str, Any]
    shipped: bool


def list_models() -> list[ModelEntry]:
    """Complete model folders only: half-written (``.partial``) folders, folders whose
    model.json is unreadable and folders whose weight file is missing or not the size
    model.json records (cut short, replaced) are never listed. Only ``stat`` is used, so the
    Model menu stays instant; the sha256 is checked when a model is loaded."""
    entries = []
    for root, shipped in ((shipped_models_dir(), True), (user_models_dir(), False)):
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or not (folder / MODEL_JSON).is_file():
                continue
            try:
                meta = read_model_json(folder)
            except ModelLoadError:
                continue
            if _weights_complete(folder, meta):
                entries.append(ModelEntry(folder.name, folder, meta, shipped))
    return entries


def _weights_complete(folder: Path, meta: dict[str, Any]) -> bool:
    info = meta.get("weights") or {}
    name = info.get("file", "weights.safetensors")
    if not isinstance(name, str) or Path(name).name != name:
        return False
    try:
        size = (folder / name).stat().st_size
    except OSError:
        return False
    expected = info.get("bytes")
    return (folder / name).is_file() and (not isinstance(expected, int) or size == expected)


def default_model_name() -> str | None:
    """Name written in ``resources/models/DEFAULT``, if a default model is installed."""
    marker = shipped_models_dir() / DEFAULT_MARKER
    if not marker.is_file():
        return None
    name = marker.read_text().strip()
    return name if (shipped_models_dir() / name / MODEL_JSON).is_file() else None


def resolve_model(spec: str | Path | None) -> Path:
    """Turn a name, folder or file into a path; ``None`` means the shipped default."""
    if spec is None or str(spec) == "default":
        name = default_model_name()
        if name is None:
            raise ModelLoadError(
                "no default model is installed yet; pass --model NAME|FOLDER|FILE.pth"
            )
        return shipped_models_dir() / name
    path = Path(spec).expanduser()
    if path.exists():
        return path
    for entry in list_models():
        if entry.name == str(spec):
            return entry.path
    known = ", ".join(e.name for e in list_models()) or "none installed"
    raise ModelLoadError(f"model '{spec}' not found (not a file or folder; known names: {known})")


def load_official_checkpoint(path: str | Path, model_type: str | None = None) -> LoadedModel:
    """Load an official SAM (vit_b/l/h) or MedSAM ``.pth``; architecture checked against shapes."""
    path = Path(path)
    state = read_state_dict(path)
    config = infer_config(state, model_type)
    sam = build_sam(config)
    load_state_into(sam, state, path.name)
    meta = {"name": path.stem, "config": config.to_dict(), "source_checkpoint": path.name}
    return LoadedModel(
        sam=sam,
        config=config,
        model_hash=model_hash_from(sha256_file(path), config, meta),
        source=str(path),
        meta=meta,
    )


def load_model(spec: str | Path | None = None, model_type: str | None = None) -> LoadedModel:
    """Load any model the user can name: default, shipped/user name, folder, or ``.pth``."""
    path = resolve_model(spec)
    if path.is_dir():
        return load_model_folder(path)
    return load_official_checkpoint(path, model_type)


def import_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    model_type: str | None = None,
    storage_dtype: str = "float32",
) -> Path:
    """Convert an official checkpoint once into our safetensors model folder."""
    loaded = load_official_checkpoint(checkpoint, model_type)
    provenance = {
        "imported_from": Path(checkpoint).name,
        "imported_sha256": sha256_file(Path(checkpoint)),
        "model_type": loaded.config.name,
    }
    return save_sam_folder(
        out_dir,
        loaded.sam,
        loaded.config,
        storage_dtype=storage_dtype,
        extra_meta={"name": Path(out_dir).name, "provenance": provenance},
    )
