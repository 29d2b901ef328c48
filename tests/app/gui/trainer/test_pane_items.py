"""The trainer pane items of issue 16: base preselected, plain verdicts with the CI and "keep"
as default, room and no clipping, a proper loss curve, results per project, no wheel accidents,
the user's mask style."""

from __future__ import annotations

import json
import shutil

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

import trainer.finetune as tp
from app.gui.trainer.result_view import ResultView
from app.gui.trainer.run_view import RunView


def fake_int8(gui_model, tmp_path):
    """A model folder that says INT8 and names no base (as the shipped INT8 model on a user's disk)."""
    folder = tmp_path / "some-int8"
    shutil.copytree(gui_model, folder)
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "int8": True}))
    return folder


def summary(n: int, before: float, after: float, ci, p=0.5) -> dict:
    diff = after - before
    return {"held_back": n, "n_pairs": n, "dice_before": before, "dice_after": after, "dice_diff": diff, "ci95": ci,
            "p_wilcoxon": p, "train_images": 20, "min_held_back": tp.MIN_HELD_BACK,
            "current": {"name": "lungsam-compact-int8-with-a-long-name", "bytes": 11_900_000, "int8": True},
            "new": {"name": "ft-20261201-101010-a-long-version-name", "bytes": 11_900_000, "int8": True},
            "trainable_params": 4_353_636, "total_params": 12_345_678,
            "verdict": {"kind": tp.verdict(n, diff, ci, p).kind, "text": tp.verdict(n, diff, ci, p).text}}


def test_start_preselects_the_shipped_base_and_the_red_message_clears(qtbot, gui_model, corrected_project,
                                                                      make_window, tmp_path):
    int8 = fake_int8(gui_model, tmp_path)
    assert tp.fine_tune_base(str(int8), []) == str(gui_model)  # an INT8 of unknown origin: the shipped base
    window = make_window([corrected_project])
    window.on_toggle_trainer(True)
    pane = window.trainer_pane
    qtbot.waitUntil(lambda: pane.split is not None, timeout=5000)
    assert "tiny-default" in pane.data_view.base_label.text()
    pane.set_base_model(str(int8))
    assert not pane.start()
    assert "cannot be fine-tuned" in pane.status.text() and "b00020" in pane.status.styleSheet()
    pane.set_base_model(None)  # resolved: back to the preselected base
    assert pane.status.text() == "" and pane.problem is None


def test_verdicts_are_plain_and_keeping_the_current_model_is_the_default_unless_better(qtbot):
    assert tp.verdict(2, -0.0038, [-0.05, 0.04], 0.5).kind == "too_few"
    assert "at least 5" in tp.verdict(2, -0.0038, [-0.05, 0.04], 0.5).text
    assert tp.verdict(8, -0.004, [-0.010, 0.002], 0.3).kind == "not_better"
    assert tp.verdict(8, 0.002, [-0.001, 0.005], 0.2).kind == "unclear"
    assert tp.verdict(8, 0.010, [0.004, 0.016], 0.01).better
    view = ResultView()
    qtbot.addWidget(view)
    view.show()
    view.show_summary(summary(2, 0.9948, 0.9910, [-0.05, 0.04]))  # the trial's case
    assert "Too few held-back images to tell (2; at least 5" in view.verdict.text()
    assert view.default_choice == "keep" and view.use_button.text() == "Use new model anyway"
    assert "95% CI -0.0500 to +0.0400" in view.table.item(1, 1).text()
    view.show_summary(summary(8, 0.95, 0.97, [0.01, 0.03], 0.01))
    assert view.default_choice == "use" and "is better" in view.verdict.text()
    view.show_summary(summary(8, 0.97, 0.96, [-0.02, 0.001]))
    assert view.default_choice == "keep" and "not better" in view.verdict.text()


def test_the_result_table_is_not_clipped(qtbot):
    view = ResultView()
    qtbot.addWidget(view)
    view.resize(460, 600)
    view.show()
    view.show_summary(summary(8, 0.95, 0.97, [0.01, 0.03], 0.01))
    qtbot.wait(50)
    table, metrics = view.table, view.table.fontMetrics()
    for r in range(table.rowCount()):
        for c in range(table.columnCount()):
            text = table.item(r, c).text()
            assert table.columnWidth(c) >= metrics.horizontalAdvance(text), (r, c, text)
    rows = sum(table.rowHeight(r) for r in range(table.rowCount()))
    assert table.viewport().height() >= rows  # every row shows, none behind a scroll bar


def test_the_loss_plot_has_a_point_per_step_and_no_empty_axis_before_data(qtbot):
    view = RunView()
    qtbot.addWidget(view)
    view.show()
    view.plot.set_total_epochs(15)
    view.on_event({"event": "start", "stage": "stage1", "epochs": 15, "steps_per_epoch": 1, "total_steps": 15,
                   "train_images": 1, "val_images": 1})
    for step in range(1, 16):
        view.on_event({"event": "step", "stage": "stage1", "epoch": step, "step": step, "total_steps": 15, "loss": 1 / step})
        view.on_event({"event": "epoch", "stage": "stage1", "epoch": step, "val_dice": 0.5 + step / 100})
    qtbot.wait(50)
    assert len(view.plot.loss["stage1"]) == 15 and len(view.plot.dice["stage1"]) == 15
    for plot in (view.plot.loss_plot, view.plot.dice_plot):
        low, high = plot.viewRange()[0]
        assert -1 < low <= 1 and 14 <= high <= 16.5, (low, high)


def test_the_canvas_gets_its_space_back_when_the_pane_closes(qtbot, gui_model, make_window):
    window = make_window()
    window.resize(1400, 900)
    qtbot.wait(100)
    before = window.canvas.width()
    window.on_toggle_trainer(True)
    qtbot.waitUntil(lambda: window.canvas.width() < before - 100, timeout=3000)
    pane = window.trainer_pane
    assert pane.height() > 0.75 * window.centralWidget().height()  # not squeezed under the labels
    window.on_toggle_trainer(False)
    qtbot.waitUntil(lambda: abs(window.canvas.width() - before) <= 4, timeout=3000)


def test_opening_another_folder_clears_the_previous_results(qtbot, gui_model, corrected_project, make_window, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(next(corrected_project.glob("*.png")), other)
    window = make_window([corrected_project])
    pane = window.trainer_pane
    plan = tp.TrainPlan(corrected_project, str(gui_model))
    pane.finetune = tp.FineTune(plan, tmp_path / "run")
    pane.result_view.show_summary(summary(8, 0.95, 0.97, [0.01, 0.03], 0.01))
    pane.run_view.append_log("previous run")
    assert window.open_paths([other])
    assert pane.finetune is None and pane.result_view.table.item(0, 0) is None
    assert pane.run_view.log.toPlainText() == "" and not pane.use_button.isEnabled()


def test_the_wheel_changes_spin_and_combo_boxes_only_when_focused(qtbot, gui_model, make_window):
    window = make_window()
    window.on_toggle_trainer(True)
    settings = window.trainer_pane.settings
    spin, combo = settings.s1_epochs, settings.device

    def wheel(widget) -> None:
        event = QWheelEvent(QPointF(5, 5), QPointF(widget.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, 120),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
        from PySide6.QtWidgets import QApplication

        QApplication.sendEvent(widget, event)

    window.canvas.setFocus()
    value, index = spin.value(), combo.currentIndex()
    wheel(spin)
    wheel(combo)
    assert spin.value() == value and combo.currentIndex() == index
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=2000)
    wheel(spin)
    assert spin.value() == value + 1


def test_the_pane_fine_tunes_the_style_the_user_works_in(qtbot, gui_model, corrected_project, make_window,
                                                         styled_tiny_sam, tmp_path):
    from engine.models import save_sam_folder

    styled = save_sam_folder(tmp_path / "styled", *styled_tiny_sam)
    window = make_window([corrected_project])
    pane = window.trainer_pane
    window.annotator.style = "anatomical"
    plan = pane.current_plan()
    assert plan.style == "anatomical"
    args = tp.FineTune(tp.TrainPlan(corrected_project, str(styled), style="anatomical"), tmp_path / "r").stage_args("stage1")
    assert args[args.index("--data-style") + 1] == "anatomical"
    plain = tp.FineTune(tp.TrainPlan(corrected_project, str(gui_model), style="anatomical"), tmp_path / "r2")
    assert "--data-style" not in plain.stage_args("stage1")  # a base without that style trains its first
