"""The compare view: the default pair is the FP32 twin beside the shipped INT8 model; both masks
are each model's own Predictor output for the box sent, and the Dice shown is the Dice of those
masks; a screenshot of the default pair."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from app.gui.compare import DEFAULT_A, DEFAULT_B, CompareWindow, agreement
from app.gui.compare.side import weight_counts
from engine.models import export_int8, load_model
from engine.predict import Predictor
from tests.conftest import synthetic_cxr

ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture
def windows():
    """Compare windows closed (worker threads stopped) after the test, pass or fail."""
    made: list[CompareWindow] = []
    yield made
    for window in made:
        window.close()


def open_compare(qtbot, windows, pixels: np.ndarray, *models: str) -> CompareWindow:
    """``models`` empty: the default pair, as View > Compare models and ``gui --compare`` open it."""
    window = CompareWindow(*models, device="cpu")
    windows.append(window)
    window.show()
    window.set_image(pixels)
    qtbot.waitUntil(lambda: all(s.ready and s.embedded_id is not None for s in window.sides), timeout=120000)
    return window


def send_and_wait(qtbot, window: CompareWindow, box) -> int:
    request_id = window.send_box(box)
    qtbot.waitUntil(lambda: all(s.request_id == request_id for s in window.sides), timeout=60000)
    return request_id


def test_default_pair_is_the_fp32_twin_beside_the_shipped_int8(qtbot, windows):
    """A live drag on the default pair ends in each model's own Predictor mask for the box
    sent, and the Dice/IoU shown are those of the two masks."""
    from engine.imaging import load_image

    pixels = load_image(ROOT / "resources" / "samples" / "ARDSSevere.png").pixels
    window = open_compare(qtbot, windows, pixels)
    assert [s.spec for s in window.sides] == [DEFAULT_A, DEFAULT_B]
    assert (DEFAULT_A, DEFAULT_B) == ("lungsam-compact-fp32", "lungsam-compact-int8")
    h, w = pixels.shape[:2]
    for f in (0.3, 0.2, 0.12):  # a live drag on the left canvas: latest wins on both sides
        window.sides[0].canvas.box_dragged.emit((f * w, f * h, (1 - f) * w, (1 - f) * h), False)
    box = (0.08 * w, 0.1 * h, 0.92 * w, 0.92 * h)
    send_and_wait(qtbot, window, box)
    masks = []
    for side, name in zip(window.sides, (DEFAULT_A, DEFAULT_B), strict=True):
        model = load_model(name)
        predictor = Predictor(model, device="cpu")
        predictor.set_image(pixels)
        expected = predictor.predict(boxes=box).masks[0, 0]
        assert np.array_equal(side.mask, expected), name
        masks.append(expected)
        figures = side.figures.text()
        size = (Path(model.source) / "weights.safetensors").stat().st_size
        total, trainable = weight_counts(model)
        assert f"weights file {size / 1e6:.2f} MB" in figures, figures
        assert f"{total / 1e6:.2f} M weights, {trainable / 1e6:.2f} M trainable" in figures, figures
        assert "box-to-mask" in figures and "embedding -" not in figures
    assert window.sides[0].info.model.meta["twin"]["of"] == DEFAULT_B
    assert "FP32 (stored as FP16)" in window.sides[0].figures.text()
    assert "INT8 (78 layers" in window.sides[1].figures.text()
    assert weight_counts(load_model(DEFAULT_A))[0] == weight_counts(load_model(DEFAULT_B))[0]  # one model
    dice, iou = agreement(*masks)
    assert window.dice == dice and window.iou == iou
    assert 0.99 < dice < 1.0  # two precisions: close, not identical
    assert f"Dice {dice:.4f}" in window.metrics.text() and f"IoU {iou:.4f}" in window.metrics.text()


def test_any_two_models_can_be_compared(qtbot, windows, model_dir, tiny_sam, tmp_path):
    sam, config = tiny_sam
    int8_dir = export_int8(sam, config, tmp_path / "tiny-int8")
    pixels = synthetic_cxr(96, 80)
    window = open_compare(qtbot, windows, pixels, str(model_dir), str(int8_dir))
    box = (5.0, 8.0, 74.0, 90.0)
    send_and_wait(qtbot, window, box)
    for side, folder in zip(window.sides, (model_dir, int8_dir), strict=True):
        predictor = Predictor(load_model(folder), device="cpu")
        predictor.set_image(pixels)
        assert np.array_equal(side.mask, predictor.predict(boxes=box).masks[0, 0])
    assert window.dice == agreement(window.sides[0].mask, window.sides[1].mask)[0]


def test_agreement_of_masks():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert agreement(a, b) == (1.0, 1.0)
    a[:2], b[1:3] = True, True
    assert agreement(a, b) == (0.5, 1 / 3)


@pytest.mark.skipif(not os.environ.get("LUNGSAM_SCREENSHOTS"), reason="set LUNGSAM_SCREENSHOTS=1 to refresh")
def test_screenshot_of_the_shipped_pair(qtbot, windows):
    from engine.imaging import load_image

    samples = ROOT / "resources" / "samples"
    warm = load_image(samples / "pneumocystis-pneumonia-1.jpg").pixels
    window = open_compare(qtbot, windows, warm)  # warm both models up: the figures show a warm run
    send_and_wait(qtbot, window, (10, 10, 500, 500))
    pixels = load_image(samples / "ARDSSevere.png").pixels
    window.set_image(pixels)
    qtbot.waitUntil(lambda: all(s.embedded_id == window._image_id for s in window.sides), timeout=60000)
    h, w = pixels.shape[:2]
    for f in (0.2, 0.15, 0.1):
        send_and_wait(qtbot, window, (f * w, f * h, (1 - f) * w, (1 - f) * h))
    send_and_wait(qtbot, window, (0.08 * w, 0.1 * h, 0.92 * w, 0.92 * h))
    qtbot.wait(200)
    window.grab().save(str(ROOT / "docs" / "screenshots" / "compare.png"))


def test_view_menu_opens_compare_with_the_current_model(qtbot, make_window, gui_model, tmp_path, monkeypatch):
    from PIL import Image

    import app.gui.compare as compare

    path = tmp_path / "case.png"
    Image.fromarray(synthetic_cxr(96, 80)).save(path)
    monkeypatch.setattr(compare, "DEFAULT_A", str(gui_model))
    main = make_window([path])
    action = next(a for a in main.menus["View"].actions() if a.objectName() == "compare_models")
    action.trigger()
    opened = [d for d in main._dialogs if isinstance(d, CompareWindow)]
    assert len(opened) == 1
    view = opened[0]
    qtbot.waitUntil(lambda: all(s.embedded_id is not None for s in view.sides), timeout=60000)
    assert view.sides[1].info.source == main.model_info.source
    assert view.sides[0].canvas.image_size == (96, 80)
