"""Shared fixtures: tiny SAM models, official-format checkpoints and real CXR samples."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
if not DATA_ROOT.is_dir():  # CI clones main beside shared/
    DATA_ROOT = Path(os.environ.get("LUNGSAM_DATA", "/work/shared/data"))


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_sam():
    """A tiny random SAM whose masks are neither empty nor full (so agreement tests bite)."""
    from engine.sam import build_sam
    from tests.sam_factory import tiny_config

    torch.manual_seed(1)
    config = tiny_config(img_size=64)
    sam = build_sam(config)
    return sam, config


@pytest.fixture
def styled_tiny_sam(tiny_sam):
    """The tiny SAM with two mask styles, ``visible`` and ``anatomical``, whose heads differ
    (the second one's hypernetwork MLP is scaled by -1.5), so a wrong style shows."""
    from engine.sam import add_mask_style, set_mask_styles

    sam, config = tiny_sam
    set_mask_styles(sam, ["visible"])
    add_mask_style(sam, "anatomical")
    with torch.no_grad():
        for p in sam.mask_decoder.output_hypernetworks_mlps[1].parameters():
            p.mul_(-1.5)
    return sam, config


@pytest.fixture
def loaded_tiny(tiny_sam):
    from engine.models import LoadedModel

    sam, config = tiny_sam
    return LoadedModel(sam=sam, config=config, model_hash="tiny-test", source="memory")


@pytest.fixture
def cxr_dir() -> Path:
    path = DATA_ROOT / "covidqu_ex" / "val"
    if not (path / "images").is_dir():
        pytest.skip("shared CXR data not available")
    return path


@pytest.fixture
def gb_dir() -> Path:
    path = DATA_ROOT / "covid_chestxray_gb"
    if not (path / "images").is_dir():
        pytest.skip("shared CXR data not available")
    return path


def synthetic_cxr(height: int = 96, width: int = 80, seed: int = 0) -> np.ndarray:
    """A grey image with two bright 'lung' ellipses on a darker body, plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    img = np.full((height, width), 60.0)
    for cx in (0.3, 0.7):
        inside = ((xx - cx * width) / (0.16 * width)) ** 2 + ((yy - 0.5 * height) / (0.3 * height)) ** 2 < 1
        img[inside] = 180
    img += rng.normal(0, 8, img.shape)
    return img.clip(0, 255).astype(np.uint8)
