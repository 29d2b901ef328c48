"""Masks and paths shared by the project-store tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
KILL_SAVER = Path(__file__).with_name("kill_saver.py")
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}



def lung_masks(height: int = 48, width: int = 40, shift: int = 0) -> dict[str, np.ndarray]:
    """Right lung on the image's left, left lung on the image's right (patient's view)."""
    yy, xx = np.mgrid[:height, :width]
    right = ((xx - 0.3 * width - shift) / (0.15 * width)) ** 2 + (
        (yy - height / 2) / (0.3 * height)
    ) ** 2 < 1
    left = ((xx - 0.7 * width - shift) / (0.15 * width)) ** 2 + (
        (yy - height / 2) / (0.3 * height)
    ) ** 2 < 1
    return {"lungs": right | left, "right lung": right, "left lung": left}


def tree_digest(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` -> sha256 of its bytes ("dir" for folders): equal
    before and after means nothing was added, removed or changed."""
    import hashlib

    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        found[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def image_bytes(seed: int, shape: tuple[int, int] = (48, 40)) -> bytes:
    """A small grey PNG, different per seed (the store hashes image files, never decodes them)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@contextlib.contextmanager
def read_only_view(source: Path, view: Path) -> Iterator[Path]:
    """``source`` seen at ``view`` through a read-only bind mount; pytest.skip where mounting is
    not allowed (not root, no CAP_SYS_ADMIN)."""
    import pytest

    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    view.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mount", "--bind", str(source), str(view)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {made.stderr.decode().strip()}")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(view)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], capture_output=True)
