"""Zero-click fixtures: the shipped default model (its masks are meaningful) and folders of
real chest X-rays with their ground-truth lung masks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def shipped_model(tmp_path, monkeypatch) -> str:
    """The shipped INT8 default (256 px input: tens of ms an image on a CPU), no user models."""
    monkeypatch.delenv("LUNGSAM_RESOURCES", raising=False)
    monkeypatch.setenv("LUNGSAM_MODELS", str(tmp_path / "user-models"))
    return "lungsam-compact-int8"


def copy_cxrs(cxr_dir: Path, folder: Path, count: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((cxr_dir / "images").glob("*.png"))[start : start + count]
    return [Path(shutil.copy(source, folder / source.name)) for source in sources]


def ground_truth(cxr_dir: Path, name: str) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(cxr_dir / "masks" / name).convert("L")) > 127


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
