"""Window-level behaviour: scale, no model installed, model switching, shortcuts, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from app.gui import shortcuts
from tests.app.conftest import drag_box, engine_mask, wait_ready, wait_settled


def test_5000_image_folder_opens_fast_and_memory_stays_bounded(qtbot, gui_model, cxr_dir, tmp_path, make_window):
    folder = tmp_path / "big"
    source = sorted((cxr_dir / "images").glob("*.png"))[0]
    for i in range(50):
        sub = folder / f"series{i:02d}"
        sub.mkdir(parents=True)
        for j in range(100):
            os.link(source, sub / f"img{j:03d}.png")  # 5,000 real images, no disk cost
    window = make_window()
    start = time.perf_counter()
    assert window.open_paths([folder])
    qtbot.waitUntil(lambda: window.image is not None, timeout=10000)
    elapsed = time.perf_counter() - start
    assert len(window.project.records) == 5000
    assert window.image_list.model.rowCount() == 5000
    assert elapsed < 3.0, f"opening 5000 images took {elapsed:.2f} s"
    print(f"opened 5000 images in {elapsed:.2f} s")
    wait_ready(qtbot, window)
    for _ in range(6):
        window.on_next_image()
        wait_ready(qtbot, window)
    assert len(window.loader.cached_paths()) <= window.loader.max_images == 3
    assert window.cache.nbytes <= window.cache.max_bytes == 512 << 20


def test_window_opens_without_any_model_and_says_so(qtbot, image_folder, tmp_path, monkeypatch, make_window):
    monkeypatch.setenv("LUNGSAM_RESOURCES", str(tmp_path / "empty-resources"))
    monkeypatch.setenv("LUNGSAM_MODELS", str(tmp_path / "empty-models"))
    window = make_window([image_folder])
    assert window.model_info is None
    assert "no model installed - choose one (Model menu)" in window.status.model.text()
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    assert window.annotator.session.prompt("lungs").box is not None  # the box is kept
    assert "lungs" not in window.annotator.session.masks


def test_switching_model_re_embeds_and_predicts_with_the_new_model(qtbot, gui_model, image_folder, tmp_path, make_window):
    import torch

    from engine.models import save_sam_folder
    from engine.sam import build_sam
    from tests.sam_factory import tiny_config

    torch.manual_seed(7)
    other = save_sam_folder(tmp_path / "user-models" / "tiny-other", build_sam(tiny_config(img_size=64)),
                            tiny_config(img_size=64), extra_meta={"name": "tiny-other"})
    window = make_window([image_folder])
    first_hash = window.model_info.model_hash
    window.model_menu.rebuild()
    names = [a.text() for a in window.menus["Model"].actions()]
    assert any("tiny-default" in n for n in names) and any("tiny-other" in n for n in names)
    window.model_menu.model_chosen.emit(str(other))
    qtbot.waitUntil(lambda: window.model_info.name == "tiny-other", timeout=20000)
    wait_ready(qtbot, window)
    assert window.model_info.model_hash != first_hash
    assert window.status.model.text() == "model: tiny-other" and window.status.device.text() == "device: cpu"
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    box = window.annotator.session.prompt("lungs").box
    assert np.array_equal(window.annotator.session.masks["lungs"],
                          engine_mask(other, window.image.pixels, boxes=np.array(box)))
    window.model_menu.device_chosen.emit("cpu")  # device switch reloads and re-embeds as well
    qtbot.waitUntil(lambda: not window.model_loading, timeout=20000)
    wait_ready(qtbot, window)
    assert window.model_info.device == "cpu"


def test_every_action_has_a_handler_and_the_shortcuts_dialog_lists_its_keys(qtbot, gui_model, make_window):
    window = make_window()
    for spec in shortcuts.ACTIONS:
        action = window.actions[spec.id]
        assert [k.toString() for k in action.shortcuts()] == [
            k.toString() for k in map(type(action.shortcut()), spec.keys)
        ]
    window.on_shortcuts()
    dialog = window._dialogs[-1]
    cells = {dialog.table.item(r, 2).text() for r in range(dialog.table.rowCount())}
    for spec in shortcuts.ACTIONS:
        if spec.keys:
            assert ", ".join(spec.keys) in cells
    needed = {"N", "P", "B", "R", "E", "[", "]", "F", "I", "1", "2", "3", "O", "Ctrl+S", "S",
              "Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+E", "0", "F1"}
    bound = {k for spec in shortcuts.ACTIONS for k in spec.keys}
    assert needed <= bound
    keys = [k for spec in shortcuts.ACTIONS for k in spec.keys]
    assert len(keys) == len(set(keys))  # no key does two things


def test_lungsam_gui_is_a_subcommand_that_does_not_load_qt_for_others():
    code = ("import sys; from app.cli import build_parser; p = build_parser();"
            "a = p.parse_args(['gui', 'x', '--device', 'cpu']); assert a.paths == ['x'];"
            "assert 'PySide6' not in sys.modules, 'Qt imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))


def test_dragging_with_the_middle_button_pans_and_the_wheel_zooms(qtbot, gui_model, image_folder, make_window):
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    window = make_window([image_folder])
    canvas = window.canvas
    zoom = canvas.zoom
    centre = canvas.viewport().rect().center()
    event = QWheelEvent(QPointF(centre), QPointF(canvas.viewport().mapToGlobal(centre)), QPoint(0, 0),
                        QPoint(0, 480), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(canvas.viewport(), event)
    assert canvas.zoom > zoom * 1.5
    before = canvas.mapToScene(centre)
    QTest.mousePress(canvas.viewport(), Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(canvas.viewport(), centre + QPoint(60, 40))
    QTest.mouseRelease(canvas.viewport(), Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, centre + QPoint(60, 40))
    after = canvas.mapToScene(centre)
    assert after.x() < before.x() and after.y() < before.y()
    assert not window.annotator.session.masks  # panning is not drawing
    window.on_fit()
    assert abs(canvas.zoom - zoom) < 1e-6
