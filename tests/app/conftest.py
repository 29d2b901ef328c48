"""GUI fixtures: a tiny random SAM installed as the default model, a folder of real CXRs,
and a factory for real MainWindows (offscreen) that are closed, threads stopped, afterwards."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")


@pytest.fixture(autouse=True)
def private_preferences(tmp_path, monkeypatch) -> Path:
    """Each test gets its own GUI preferences file (never the user's)."""
    path = tmp_path / "gui.ini"
    monkeypatch.setenv("LUNGSAM_CONFIG", str(path))
    return path


def install_default(sam, config, name: str, tmp_path: Path, monkeypatch) -> Path:
    """Save ``sam`` as the shipped default (LUNGSAM_RESOURCES/models/DEFAULT) of this test."""
    from engine.models import save_sam_folder

    resources = tmp_path / "resources"
    folder = save_sam_folder(resources / "models" / name, sam, config, extra_meta={"name": name})
    (resources / "models" / "DEFAULT").write_text(name + "\n")
    monkeypatch.setenv("LUNGSAM_RESOURCES", str(resources))
    monkeypatch.setenv("LUNGSAM_MODELS", str(tmp_path / "user-models"))
    return folder


@pytest.fixture
def gui_model(tiny_sam, tmp_path, monkeypatch) -> Path:
    """The tiny SAM installed as the shipped default."""
    return install_default(*tiny_sam, "tiny-default", tmp_path, monkeypatch)


@pytest.fixture
def model_dir(tiny_sam, tmp_path) -> Path:
    """The tiny random SAM saved as a model folder (for CLI tests, no GUI install)."""
    from engine.models import save_sam_folder

    sam, config = tiny_sam
    return save_sam_folder(tmp_path / "tiny-model", sam, config)


@pytest.fixture
def image_folder(cxr_dir, tmp_path) -> Path:
    """Five real chest X-rays, two of them in a sub-folder (recursive listing)."""
    folder = tmp_path / "cases"
    (folder / "sub").mkdir(parents=True)
    sources = sorted((cxr_dir / "images").glob("*.png"))[:5]
    for i, source in enumerate(sources):
        shutil.copy(source, (folder / "sub" if i >= 3 else folder) / source.name)
    return folder


def synthetic_cxr(seed: int, shape: tuple[int, int] = (96, 112)) -> np.ndarray:
    """A grey image with two dark lung-like ovals, different per seed (no shared data needed)."""
    rng = np.random.default_rng(seed)
    height, width = shape
    yy, xx = np.mgrid[:height, :width]
    image = 170 + rng.normal(0, 12, shape)
    for cx in (0.3, 0.7):
        inside = ((xx - cx * width) / (0.15 * width)) ** 2 + ((yy - height / 2) / (0.32 * height)) ** 2 < 1
        image[inside] -= 90
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture
def synthetic_folder(tmp_path) -> Path:
    """Four small synthetic chest X-rays (96 x 112 PNG)."""
    from PIL import Image

    folder = tmp_path / "synthetic"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(synthetic_cxr(i)).save(folder / f"img{i}.png")
    return folder


@pytest.fixture
def make_window(qtbot):
    """``make_window(paths=None, **kwargs)`` -> a shown MainWindow, ready when paths are given."""
    from app.gui.main_window import MainWindow

    windows = []

    def factory(paths=None, wait=True, **kwargs):
        kwargs.setdefault("device", "cpu")
        window = MainWindow(**kwargs)
        windows.append(window)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        if paths is not None:
            assert window.open_paths([Path(p) for p in paths])
            if wait:
                wait_ready(qtbot, window)
        return window

    yield factory
    for window in windows:
        window.close()


def wait_ready(qtbot, window, timeout: int = 20000) -> None:
    """Until the current image is shown and (with a model) embedded."""
    qtbot.waitUntil(
        lambda: window.image is not None
        and not window.model_loading
        and (window.model_info is None or window.embedded_token == window.token),
        timeout=timeout,
    )


def drag_box(qtbot, window, box, steps: int = 8, modifier=None) -> None:
    """Press at one corner of ``box`` (image pixels), move in ``steps``, release at the other."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    mods = modifier or Qt.KeyboardModifier.NoModifier
    viewport = window.canvas.viewport()
    p0 = window.canvas.image_to_viewport(box[0], box[1])
    p1 = window.canvas.image_to_viewport(box[2], box[3])
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, mods, p0)
    for k in range(1, steps + 1):
        QTest.mouseMove(viewport, QPoint(p0.x() + (p1.x() - p0.x()) * k // steps, p0.y() + (p1.y() - p0.y()) * k // steps))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, mods, p1)


def click(window, x: float, y: float, modifier=None, button=None) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    QTest.mouseClick(
        window.canvas.viewport(),
        button or Qt.MouseButton.LeftButton,
        modifier or Qt.KeyboardModifier.NoModifier,
        window.canvas.image_to_viewport(x, y),
    )


def wait_settled(qtbot, window, timeout: int = 20000) -> None:
    """Until no box/click is waiting for its final mask."""
    qtbot.waitUntil(lambda: window.annotator.idle, timeout=timeout)


def engine_mask(model_dir: Path, pixels: np.ndarray, **prompts) -> np.ndarray:
    from engine.models import load_model
    from engine.predict import Predictor

    predictor = Predictor(load_model(model_dir), device="cpu")
    predictor.set_image(pixels)
    return predictor.predict(**prompts).masks[0, 0]


@pytest.fixture
def corrected_project(cxr_dir, tmp_path) -> Path:
    """Six real CXRs whose ground-truth masks are saved as the clinician's corrections."""
    from PIL import Image

    from engine.project import ProjectStore

    folder = tmp_path / "project"
    folder.mkdir()
    sources = sorted((cxr_dir / "images").glob("*.png"))[:6]
    for source in sources:
        shutil.copy(source, folder / source.name)
    with ProjectStore.open(folder) as store:
        for source in sources:
            mask = np.array(Image.open(cxr_dir / "masks" / source.name).convert("L")) > 127
            store.save_annotation(source.name, {"lungs": mask}, "corrected", model_name="clinician")
    return folder
