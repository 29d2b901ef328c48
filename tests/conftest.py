"""Shared fixtures: tiny SAM models, official-format checkpoints and real CXR samples."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest_plugins = ["pytester"]  # tests/test_missing_data.py runs pytest on a fake checkout



def _data_root() -> Path:
    """``$LUNGSAM_DATA`` if set, else ``shared/data`` beside the checkout (CI clones main
    beside shared/), else ``/work/shared/data``."""
    if os.environ.get("LUNGSAM_DATA"):
        return Path(os.environ["LUNGSAM_DATA"])
    beside = Path(__file__).resolve().parents[2] / "shared" / "data"
    return beside if beside.is_dir() else Path("/work/shared/data")


DATA_ROOT = _data_root()
MISSING_DATA = "shared data missing"  # every skip for absent data starts with this


def in_ci() -> bool:
    """CI sets ``CI`` (GitHub, GitLab: ``CI=true``); empty, ``0`` and ``false`` mean not CI."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_data(path: Path, what: str = "") -> Path:
    """``path`` if it exists. Otherwise the test fails in CI (a checkout without the data
    must not report green) and is skipped elsewhere, with the reason in the summary."""
    if path.exists():
        return path
    reason = f"{MISSING_DATA}: {path} not found{f' ({what})' if what else ''}; set LUNGSAM_DATA"
    if in_ci():
        pytest.fail(f"{reason} (CI is set: tests that need the data fail instead of skipping)",
                    pytrace=False)
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Name the tests skipped for missing data, so a green run without data says so."""
    missing = []
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        if MISSING_DATA in reason:
            missing.append((report.nodeid, reason.removeprefix("Skipped: ")))
    if not missing:
        return
    terminalreporter.section("skipped: shared data missing", sep="=", yellow=True, bold=True)
    terminalreporter.line(
        f"{len(missing)} tests did not run because the data they need is absent "
        f"(LUNGSAM_DATA={DATA_ROOT}); with CI set they fail instead:"
    )
    for reason in sorted({r for _, r in missing}):
        count = sum(1 for _, r in missing if r == reason)
        terminalreporter.line(f"  {count:4d} x {reason}")


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
    require_data(path / "images", "COVID-QU-Ex val images")
    return path


@pytest.fixture
def gb_dir() -> Path:
    path = DATA_ROOT / "covid_chestxray_gb"
    require_data(path / "images", "covid-chestxray GB images")
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
