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


def test_with_the_shipped_models_the_pane_preselects_lungsam_compact_base(qtbot, make_window, monkeypatch):
    """The trial's first use: the shipped INT8 default in use, the shipped FP32 base preselected."""
    from engine.models import resolve_model, shipped_models_dir

    monkeypatch.delenv("LUNGSAM_RESOURCES", raising=False)
    base = shipped_models_dir() / "lungsam-compact-base"
    assert (base / "model.json").is_file()
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=30000)
    assert window.model_info.source == str(resolve_model(None)) and "int8" in window.model_info.name
    window.on_toggle_trainer(True)
    pane = window.trainer_pane
    assert pane.base_model() == str(base)
    assert pane.data_view.base_label.text().startswith("Base model: lungsam-compact-base [compact-hr, FP32]")


def test_too_few_held_back_images_are_said_before_the_run(qtbot, gui_model, corrected_project, make_window,
                                                          tmp_path):
    """Six corrected images hold back one: the pane says so, with the minimum and how many
    patients would do, before anyone trains; one corrected image cannot start at all."""
    from engine.project import ProjectStore

    window = make_window([corrected_project])
    window.on_toggle_trainer(True)
    pane = window.trainer_pane
    qtbot.waitUntil(lambda: pane.split is not None, timeout=5000)
    note = pane.data_view.held_back_note
    assert len(pane.split.val) == 1 and note.isVisible()
    assert note.text().startswith(f"Only 1 image(s) held back: at least {tp.MIN_HELD_BACK} are needed")
    assert "about 23 patients' corrected images at 20% held back" in note.text()
    pane.settings.held_back.setValue(50)
    assert len(pane.split.val) == 3 and "about 10 patients' corrected images at 50% held back" in note.text()

    single = tmp_path / "single"
    single.mkdir()
    image = next(corrected_project.glob("*.png"))
    shutil.copy(image, single)
    masks = window.project.store.latest_annotation(image.name).masks
    with ProjectStore.open(single) as store:
        store.save_annotation(image.name, masks, "corrected")
    assert window.open_paths([single])
    assert "nothing can be held back" in note.text() and "still run" not in note.text()
    assert not pane.start()
    assert "nothing can be held back" in pane.status.text() and "b00020" in pane.status.styleSheet()
    assert not (single / ".lungsam" / "runs").exists() or not any((single / ".lungsam" / "runs").iterdir())


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
    assert "95% CI -0.0500 to +0.0400" in view.table.item(1, 0).text()
    view.show_summary(summary(8, 0.95, 0.97, [0.01, 0.03], 0.01))
    assert view.default_choice == "use" and "is better" in view.verdict.text()
    view.show_summary(summary(8, 0.97, 0.96, [-0.02, 0.001]))
    assert view.default_choice == "keep" and "not better" in view.verdict.text()


def cells_fit(table) -> None:
    """Every cell's text, wrapped as the view wraps it, inside the cell; every column inside the
    table's viewport (no horizontal scroll bar hides one)."""
    from PySide6.QtCore import QRect

    metrics = table.fontMetrics()
    assert table.horizontalScrollBar().maximum() == 0
    assert table.horizontalHeader().length() <= table.viewport().width()
    assert sum(table.rowHeight(r) for r in range(table.rowCount())) <= table.viewport().height()
    for r in range(table.rowCount()):
        for c in range(table.columnCount()):
            item = table.item(r, c)
            if item is None or not item.text():
                continue
            cell = table.visualRect(table.model().index(r, c))
            room = QRect(0, 0, cell.width() - 8, 10_000)  # the item's text margins
            need = metrics.boundingRect(room, int(Qt.TextFlag.TextWordWrap), item.text())
            assert need.width() <= room.width() and need.height() <= cell.height(), (r, c, item.text())


def test_the_result_table_is_not_clipped(qtbot, gui_model, make_window):
    """In the pane as it opens at the default window size, with long model names."""
    from PySide6.QtWidgets import QApplication, QScrollArea

    window = make_window()
    window.on_toggle_trainer(True)
    pane = window.trainer_pane
    view = pane.result_view
    view.show_summary(summary(8, 0.95, 0.97, [0.01, 0.03], 0.01))
    QApplication.processEvents()
    qtbot.wait(50)
    cells_fit(view.table)
    assert pane.findChild(QScrollArea).horizontalScrollBar().maximum() == 0
    note = view.note  # below the table, every line of it
    assert note.geometry().top() >= view.table.geometry().bottom()
    assert note.height() >= note.heightForWidth(note.width())
    assert view.keep_button.geometry().top() >= note.geometry().bottom()
    assert "95% CI +0.0100 to +0.0300" in view.table.item(1, 0).text()  # the pair's row spans both
    assert view.table.columnSpan(1, 0) == 2


def test_the_split_list_and_the_model_history_are_not_clipped(qtbot, gui_model, make_window):
    """Every column of both lists in view (no horizontal scroll bar); history texts whole, a
    long image name elided in the middle with the whole name in its tooltip."""
    from PySide6.QtWidgets import QApplication

    window = make_window()
    window.on_toggle_trainer(True)
    pane = window.trainer_pane
    # the pane refreshes itself when its dock becomes visible (a signal delivered a little
    # later offscreen) and after saves: let that happen before putting our own lists in
    qtbot.waitUntil(pane.isVisible)
    qtbot.wait(200)
    QApplication.processEvents()
    pane._refresh_timer.stop()
    data = pane.data_view
    long_name = "SARS-10.1148rg.242035193-g04mr34g05x-Fig5-day9-a-very-long-file-name.jpeg"
    data.show_split(tp.SplitPreview([long_name, "b.png"], ["c.png"], 3))
    QApplication.processEvents()
    split = data.split_view
    assert split.horizontalScrollBar().maximum() == 0 and split.header().length() <= split.viewport().width()
    assert split.topLevelItem(0).toolTip(0) == long_name and split.topLevelItem(2).text(1) == "held back"
    history = window.trainer_pane.history
    versions = [
        {"name": "lungsam-compact-int8", "created": 1_764_600_000, "active": False,
         "provenance": {"role": "base"}, "metrics": {}, "path": "/m/base"},
        {"name": "ft-20261201-150621", "created": 1_764_601_000, "active": True,
         "provenance": {"base_model": "/m/fp32"}, "metrics": {"dice_after": 0.9482, "dice_before": 0.8816},
         "path": "/m/ft"},
    ]
    history.set_versions(versions, "/m/ft")
    QApplication.processEvents()
    tree = history.tree
    assert tree.horizontalScrollBar().maximum() == 0
    assert tree.header().length() <= tree.viewport().width()
    metrics = tree.fontMetrics()
    for row in range(tree.topLevelItemCount()):
        item = tree.topLevelItem(row)
        for column in range(tree.columnCount()):
            assert metrics.horizontalAdvance(item.text(column)) <= tree.columnWidth(column) - 6, item.text(column)
    newest = tree.topLevelItem(0)
    assert newest.text(0) == "ft-20261201-150621" and "0.9482" in newest.text(2) and "in use" in newest.text(3)
    assert "0.8816" in newest.toolTip(2)  # the current model's Dice, one hover away


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


def test_the_pane_opens_beside_a_usable_canvas_and_gives_the_space_back(qtbot, gui_model, corrected_project,
                                                                        make_window):
    """At the default window size (1400 x 900, nothing remembered): Ctrl+T opens the pane in a
    column of its own, full height, Start visible without scrolling, the canvas still a
    quarter of the window; Ctrl+T again and the canvas has its width back."""
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QScrollArea

    window = make_window([corrected_project])
    assert (window.width(), window.height()) == (1400, 900)
    qtbot.wait(100)
    before = window.canvas.width()
    assert before >= 0.55 * window.width()  # the side panels leave the image most of the window
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    pane = window.trainer_pane
    qtbot.waitUntil(lambda: pane.isVisible() and window.canvas.width() < before - 100, timeout=3000)
    assert pane.height() > 0.75 * window.centralWidget().height()  # not squeezed under the labels
    assert window.canvas.width() >= 0.25 * window.width(), window.canvas.width()
    assert window.panel.isVisible() and window.panel.width() >= window.panel.minimumSizeHint().width()
    scroll = pane.findChild(QScrollArea)
    start = pane.run_view.start_button
    top_left = start.mapTo(scroll.viewport(), start.rect().topLeft())
    assert scroll.verticalScrollBar().value() == 0 and scroll.horizontalScrollBar().maximum() == 0
    assert scroll.viewport().rect().contains(top_left) and scroll.viewport().rect().contains(
        top_left + start.rect().bottomRight())  # Start is on screen, no scrolling needed
    QTest.keyClick(window, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not pane.isVisible() and abs(window.canvas.width() - before) <= 4, timeout=3000)


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
    pane.run_view.on_event({"event": "step", "stage": "stage1", "epoch": 1, "step": 1, "total_steps": 4, "loss": 0.5})
    pane.run_view.set_status("Finished in 1 min. The new model is better.")
    assert window.open_paths([other])
    assert pane.finetune is None and pane.comparison is None and pane.result_view.table.item(0, 0) is None
    assert pane.run_view.log.toPlainText() == "" and not pane.use_button.isEnabled()
    assert pane.run_view.plot.loss == {} and pane.status.text() == "" and not pane.result_view.verdict.isVisible()


def test_the_wheel_changes_spin_and_combo_boxes_only_when_focused(qtbot, gui_model, make_window):
    """Over an unfocused box the wheel scrolls the pane, as over the rest of it; a focused
    box takes it."""
    from PySide6.QtWidgets import QApplication, QScrollArea

    window = make_window()
    window.on_toggle_trainer(True)
    settings = window.trainer_pane.settings
    spin, combo = settings.s1_epochs, settings.device
    bar = window.trainer_pane.findChild(QScrollArea).verticalScrollBar()

    def wheel(widget, delta: int) -> None:
        event = QWheelEvent(QPointF(5, 5), QPointF(widget.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, delta),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(widget, event)

    window.canvas.setFocus()
    value, index = spin.value(), combo.currentIndex()
    assert bar.maximum() > 0 and bar.value() == 0
    wheel(spin, -120)
    assert spin.value() == value and bar.value() > 0  # the pane scrolled down instead
    scrolled = bar.value()
    wheel(combo, -120)
    assert combo.currentIndex() == index and bar.value() > scrolled
    wheel(combo, 120)
    assert combo.currentIndex() == index and bar.value() == scrolled
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=2000)
    wheel(spin, 120)
    assert spin.value() == value + 1 and bar.value() == scrolled


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
