"""Small real data sets for trainer tests (copied from ../shared/data into tmp)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch


def copy_pairs(src: Path, dst: Path, n: int, start: int = 0) -> Path:
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "masks").mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in (src / "images").iterdir())[start : start + n]
    for name in names:
        shutil.copy(src / "images" / name, dst / "images" / name)
        shutil.copy(src / "masks" / name, dst / "masks" / name)
    return dst


@pytest.fixture
def small_set(cxr_dir, tmp_path) -> Path:
    """8 real val pairs (256x256 PNG, names with spaces and parentheses)."""
    return copy_pairs(cxr_dir, tmp_path / "small", 8)


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine two torch threads
    run them ~10x slower (OpenMP workers wait for each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
