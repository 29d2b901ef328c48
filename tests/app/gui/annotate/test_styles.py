"""Mask style choice in the window: offered only for models with several, redraws the label."""

from __future__ import annotations

import numpy as np

from engine.models import load_model
from engine.predict import Predictor
from tests.app.conftest import drag_box, install_default, wait_ready, wait_settled


def test_one_style_models_show_no_style_choice(gui_model, image_folder, make_window):
    window = make_window([image_folder])
    assert not window.panel.style_box.isVisibleTo(window.panel)
    assert window.annotator.style == "default"


def test_switching_style_redraws_the_box_in_that_style_and_undo_restores(
    qtbot, styled_tiny_sam, tmp_path, monkeypatch, image_folder, make_window
):
    folder = install_default(*styled_tiny_sam, "styled", tmp_path, monkeypatch)
    window = make_window([image_folder])
    assert window.panel.style_box.isVisibleTo(window.panel)
    assert [window.panel.style.itemText(i) for i in range(window.panel.style.count())] == ["visible", "anatomical"]
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    box = np.array(window.annotator.session.prompt("lungs").box)
    predictor = Predictor(load_model(folder), device="cpu")
    predictor.set_image(window.image.pixels)
    visible = predictor.predict(boxes=box, style="visible").masks[0, 0]
    anatomical = predictor.predict(boxes=box, style="anatomical").masks[0, 0]
    assert not np.array_equal(visible, anatomical)
    assert np.array_equal(window.annotator.session.masks["lungs"], visible)

    window.panel.style.setCurrentText("anatomical")
    wait_settled(qtbot, window)
    assert window.annotator.last_request.style == "anatomical"
    assert np.array_equal(window.annotator.session.masks["lungs"], anatomical)
    assert window.annotator.session.model_name == "styled [anatomical]"  # saved with the mask
    window.annotator.undo()
    assert np.array_equal(window.annotator.session.masks["lungs"], visible)

    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_M)  # M cycles the styles
    assert window.annotator.style == "visible"
    QTest.keyClick(window, Qt.Key.Key_M)
    wait_settled(qtbot, window)
    assert window.annotator.style == "anatomical"
    drag_box(qtbot, window, (30, 40, 220, 230))  # later boxes keep the chosen style
    wait_settled(qtbot, window)
    assert window.annotator.last_request.style == "anatomical"
    wait_ready(qtbot, window)


def test_the_chosen_style_is_remembered_for_the_next_window(
    qtbot, styled_tiny_sam, tmp_path, monkeypatch, image_folder, make_window, private_preferences
):
    install_default(*styled_tiny_sam, "styled", tmp_path, monkeypatch)
    first = make_window([image_folder])
    assert first.annotator.style == "visible"
    first.panel.style.setCurrentText("anatomical")
    first.close()
    assert "anatomical" in private_preferences.read_text()
    second = make_window([image_folder])
    assert second.panel.style.currentText() == "anatomical" and second.annotator.style == "anatomical"
    drag_box(qtbot, second, (30, 40, 220, 230))
    wait_settled(qtbot, second)
    assert second.annotator.last_request.style == "anatomical"


def test_a_style_switch_redraws_every_model_label_as_one_undo_step(
    qtbot, styled_tiny_sam, tmp_path, monkeypatch, image_folder, make_window
):
    from tests.app.gui_steps import box_both_lungs

    folder = install_default(*styled_tiny_sam, "styled", tmp_path, monkeypatch)
    window = make_window([image_folder])
    box_both_lungs(qtbot, window)
    session = window.annotator.session
    visible = {label: session.masks[label].copy() for label in ("right lung", "left lung")}
    window.on_label_1()  # the current label is one lung; the other must follow too
    window.panel.style.setCurrentText("anatomical")
    wait_settled(qtbot, window)
    predictor = Predictor(load_model(folder), device="cpu")
    predictor.set_image(window.image.pixels)
    right = predictor.predict(boxes=np.array(session.prompt("right lung").box), style="anatomical").masks[0, 0]
    left = predictor.predict(boxes=np.array(session.prompt("left lung").box), style="anatomical").masks[0, 0]
    assert np.array_equal(session.masks["right lung"], right & ~visible["left lung"])
    assert np.array_equal(session.masks["left lung"], left & ~session.masks["right lung"])
    assert not np.array_equal(session.masks["left lung"], visible["left lung"])
    window.annotator.undo()  # one step back: both lungs in the first style
    assert window.statusBar().currentMessage() == "undo: mask style"
    for label, mask in visible.items():
        assert np.array_equal(session.masks[label], mask)


def test_a_fine_tuned_model_keeps_its_bases_styles_and_the_users_style(
    qtbot, styled_tiny_sam, corrected_project, tmp_path, monkeypatch, make_window
):
    """Fine-tuned in the style the user works in, the new INT8 model still draws every style
    of its base: after the switch the style box stays, on the user's style."""
    import json
    from pathlib import Path

    from app.cli import main
    from engine.project import ProjectStore

    install_default(*styled_tiny_sam, "styled", tmp_path, monkeypatch)
    first = make_window()
    qtbot.waitUntil(lambda: first.model_info is not None, timeout=20000)
    first.panel.style.setCurrentText("anatomical")  # the site draws anatomically
    assert first.annotator.preferred_style() == "anatomical"
    first.close()
    tiny = ["--stage1-epochs", "1", "--stage2-epochs", "1", "--stage1-batch-size", "2", "--stage2-batch-size", "2",
            "--threads", "1", "--device", "cpu"]
    assert main(["finetune", str(corrected_project), *tiny, "--style", "anatomical", "--register", "always"]) == 0
    with ProjectStore.open(corrected_project, read_only=True) as store:
        active = store.active_model()
    run = json.loads((next((corrected_project / ".lungsam" / "runs").iterdir()) / "plan.json").read_text())
    assert run["style"] == "anatomical"
    assert json.loads((Path(active["path"]) / "model.json").read_text())["mask_styles"] == ["visible", "anatomical"]

    window = make_window([corrected_project])  # opens on the project's model: the fine-tuned one
    qtbot.waitUntil(lambda: window.model_info is not None and window.model_info.source == active["path"], timeout=20000)
    assert window.panel.style_box.isVisibleTo(window.panel)
    assert [window.panel.style.itemText(i) for i in range(window.panel.style.count())] == ["visible", "anatomical"]
    assert window.panel.style.currentText() == window.annotator.style == "anatomical"
