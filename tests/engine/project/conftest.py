"""Project-store fixtures: a folder of three placeholder images and a store open on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.project import (
    ProjectStore,
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "cxr"
    (root / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "sub/c.dcm"):
        (root / name).write_bytes(b"x")
    return root


@pytest.fixture
def store(folder: Path):
    with ProjectStore.open(folder) as opened:
        opened.register_images(["a.png", "b.png", "sub/c.dcm"])
        yield opened
