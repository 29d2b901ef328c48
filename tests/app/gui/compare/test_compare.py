"""The compare view: both masks are each model's own Predictor output for the box sent, and
the Dice shown is the Dice of those masks; a screenshot of the shipped pair."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from app.gui.compare import CompareWindow, agreement
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


def open_compare(qtbot, windows, a: str, b: str, pixels: np.ndarray) -> CompareWindow:
    window = CompareWindow(a, b, device="cpu")
    windows.append(window)
    window.show()
    window.set_image(pixels)
    qtbot.waitUntil(lambda: all(s.ready and s.embedded_id is not None for s in window.sides), timeout=120000)
    return window


def send_and_wait(qtbot, window: CompareWindow, box) -> int:
    request_id = window.send_box(box)
    qtbot.waitUntil(lambda: all(s.request_id == request_id for s in window.sides), timeout=60000)
    return request_id


def test_both_masks_are_each_models_own_output_and_dice_is_theirs(qtbot, windows, model_dir, tiny_sam, tmp_path):
    sam, config = tiny_sam
    int8_dir = export_int8(sam, config, tmp_path / "tiny-int8")
    pixels = synthetic_cxr(96, 80)
    window = open_compare(qtbot, windows, str(model_dir), str(int8_dir), pixels)
    for box in ((6, 10, 70, 88), (10, 20, 40, 60)):  # a live drag on the left canvas
        window.sides[0].canvas.box_dragged.emit(box, False)
    box = (5.0, 8.0, 74.0, 90.0)
    send_and_wait(qtbot, window, box)
    masks = []
    for side, folder in zip(window.sides, (model_dir, int8_dir), strict=True):
        predictor = Predictor(load_model(folder), device="cpu")
        predictor.set_image(pixels)
        expected = predictor.predict(boxes=box).masks[0, 0]
        assert np.array_equal(side.mask, expected)
        masks.append(expected)
    dice, iou = agreement(*masks)
    assert window.dice == dice and window.iou == iou
    assert f"Dice {dice:.4f}" in window.metrics.text() and f"IoU {iou:.4f}" in window.metrics.text()
    assert "MB" in window.sides[1].figures.text() and "box-to-mask" in window.sides[1].figures.text()


def test_agreement_of_masks():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert agreement(a, b) == (1.0, 1.0)
    a[:2], b[1:3] = True, True
    assert agreement(a, b) == (0.5, 1 / 3)


@pytest.mark.skipif(not os.environ.get("LUNGSAM_SCREENSHOTS"), reason="set LUNGSAM_SCREENSHOTS=1 to refresh")
def test_screenshot_of_the_shipped_pair(qtbot, windows):
    from engine.imaging import load_image

    pixels = load_image(ROOT / "resources" / "samples" / "ARDSSevere.png").pixels
    window = open_compare(qtbot, windows, "lungsam-compact-base", "lungsam-compact-int8", pixels)
    h, w = pixels.shape[:2]
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
