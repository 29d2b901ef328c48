"""Key A: the model proposes both lungs' boxes and masks on the current image, as one undo
step, with a quality score the image list shows; nothing found is a message, not a crash."""

from __future__ import annotations

import numpy as np

from tests.app.conftest import wait_settled
from tests.app.gui.annotate.conftest import copy_cxrs, dice, ground_truth


def drag_points(qtbot, window, start, end, steps: int = 5) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    viewport = window.canvas.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for k in range(1, steps + 1):
        QTest.mouseMove(viewport, start + (end - start) * k / steps)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def press(window, key) -> None:
    from PySide6.QtTest import QTest

    window.activateWindow()
    QTest.keyClick(window, key)


def test_key_a_proposes_both_lungs_as_editable_boxes_and_one_undo_step(qtbot, shipped_model, cxr_dir, tmp_path, make_window):
    from PySide6.QtCore import Qt

    copy_cxrs(cxr_dir, tmp_path / "cases", 2)
    window = make_window([tmp_path / "cases"], model=shipped_model)
    press(window, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: "proposed both lungs" in window.statusBar().currentMessage(), timeout=30000)
    wait_settled(qtbot, window)
    session = window.annotator.session
    right, left = session.masks["right lung"], session.masks["left lung"]
    right_box, left_box = session.prompt("right lung").box, session.prompt("left lung").box
    assert set(window.canvas.box_items) == {"right lung", "left lung"}  # drawn, hence editable
    assert right_box[2] <= left_box[2] and right_box[0] < left_box[0]  # patient's right = image left
    assert right[:, : right.shape[1] // 2].sum() > 0.9 * right.sum()
    assert left[:, left.shape[1] // 2 :].sum() > 0.9 * left.sum()
    assert not (right & left).any()
    truth = ground_truth(cxr_dir, window.project.records[window.index].rel_path)
    assert dice(right | left, truth) > 0.85  # meaningful masks, not just two blobs
    # saved at once as model output, with its quality: the list shows the badge
    record = window.project.records[window.index]
    assert record.status == "model"
    quality = window.image_list.model.quality(window.index)
    assert quality is not None and 0 < quality <= 1
    assert window.project.store.model_qualities()[record.rel_path] == round(quality, 4)
    assert f"quality {quality:.3f}" in window.statusBar().currentMessage()
    # an edited box: the masks are no longer the proposal, so its score is not saved with them
    corner = window.canvas.image_to_viewport(right_box[2], right_box[3])
    drag_points(qtbot, window, corner, window.canvas.image_to_viewport(right_box[2] - 15, right_box[3] - 15))
    wait_settled(qtbot, window)
    assert session.prompt("right lung").box[2] < right_box[2] - 10
    window.save_current()
    assert record.rel_path not in window.project.store.model_qualities()
    assert window.image_list.model.quality(window.index) is None
    window.on_undo()  # the edit
    assert session.prompt("right lung").box == right_box
    window.on_undo()  # both lungs go in one step
    assert not any(session.masks[label].any() for label in ("right lung", "left lung") if label in session.masks)
    assert session.prompt("right lung").box is None and session.prompt("left lung").box is None


def test_nothing_found_is_a_status_message_with_quality_zero(qtbot, shipped_model, cxr_dir, tmp_path, make_window, monkeypatch):
    import engine.propose.quality as quality  # propose_scored's proposer

    real = quality.propose_lungs

    def finds_nothing(predictor, style=None, refine_steps=2, jitter=False):
        found = real(predictor, style, refine_steps, jitter)
        empty = np.zeros_like(found.masks)
        return type(found)(found.lung_boxes, empty, found.scores, found.low_res_logits, False,
                           "no lung was found in this image", found.source, found.seconds, found.history,
                           found.jitter_low_res)

    monkeypatch.setattr(quality, "propose_lungs", finds_nothing)
    copy_cxrs(cxr_dir, tmp_path / "cases", 1)
    window = make_window([tmp_path / "cases"], model=shipped_model)
    window.on_propose()
    qtbot.waitUntil(lambda: "no lung was found" in window.statusBar().currentMessage(), timeout=30000)
    assert "quality 0.000" in window.statusBar().currentMessage()
    assert window.annotator.idle and not window.annotator.session.masks
    assert window.project.records[window.index].status == "new"
