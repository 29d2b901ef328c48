"""Saving, autosave, reopening, read-only second window, export - on the real window."""

from __future__ import annotations

import json
import time

import numpy as np
from PIL import Image

from engine.project import ProjectStore, rle_decode
from tests.app.conftest import drag_box, wait_ready, wait_settled
from tests.app.gui_steps import box_both_lungs


def annotate(qtbot, window):
    box_both_lungs(qtbot, window)
    window.on_tool_brush()
    session = window.annotator.session
    mask = session.mask("left lung")
    before = session.snapshot(["left lung"])
    mask[5:9, 5:9] = True  # a hand edit (as a brush stroke would make it)
    session.commit("brush", before, manual=True)
    return {label: m.copy() for label, m in session.masks.items()}


def test_save_close_reopen_restores_masks_prompts_and_status(qtbot, gui_model, image_folder, make_window):
    window = make_window([image_folder])
    masks = annotate(qtbot, window)
    rel = window.annotator.session.rel_path
    prompts = window.annotator.session.prompt_state()
    window.on_save()  # Ctrl+S: clinician final
    window.on_save()  # accepting twice makes no second version
    assert window.project.records[0].status == "corrected"
    assert window.project.records[0].latest_version == 1
    assert window.image_list.summary.text().startswith("Done 1 / 5")
    window.go_to(2)
    wait_ready(qtbot, window)
    window.close()

    again = make_window([image_folder])
    assert again.index == 2  # back where the user was
    assert again.project.records[0].status == "corrected"
    again.go_to(0)
    wait_ready(qtbot, again)
    session = again.annotator.session
    assert session.rel_path == rel
    assert set(session.masks) == set(masks)
    for label, mask in masks.items():
        assert np.array_equal(session.masks[label], mask)
    assert session.prompt_state() == prompts
    assert set(again.canvas.box_items) == {"right lung", "left lung"}
    annotation = again.project.store.latest_annotation(rel)
    assert annotation.kind == "corrected" and annotation.model_name == "tiny-default"
    assert annotation.prompts["labels"]["left lung"]["box"] == prompts["left lung"]["box"]


def test_model_output_is_autosaved_as_model_and_on_image_change(qtbot, gui_model, image_folder, make_window):
    window = make_window([image_folder], autosave_ms=200)
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    rel = window.annotator.session.rel_path
    store = window.project.store
    # the 200 ms autosave timer fires (maybe already during wait_settled on a loaded machine,
    # so wait for its effect, not for a signal that may have gone by)
    qtbot.waitUntil(lambda: store.latest_annotation(rel) is not None, timeout=5000)
    wait_settled(qtbot, window)
    qtbot.waitUntil(lambda: not window.annotator.session.dirty, timeout=5000)  # all autosaved
    autosaved = store.latest_annotation(rel)
    assert autosaved.kind == "model"
    assert window.project.records[0].status == "model"
    expected = window.annotator.session.masks["lungs"].copy()
    window.on_tool_eraser()
    before = window.annotator.session.snapshot(["lungs"])
    rows = np.flatnonzero(expected.any(axis=1))[:10]  # erase pixels the mask has
    window.annotator.session.masks["lungs"][rows] = False
    assert window.annotator.session.commit("eraser", before, manual=True)
    window.on_next_image()  # image change saves at once
    annotation = store.latest_annotation(rel)
    assert annotation.kind == "corrected" and annotation.version == autosaved.version + 1
    expected[rows] = False
    assert np.array_equal(annotation.masks["lungs"], expected)


def test_skip_marks_the_image_and_moves_on(qtbot, gui_model, image_folder, make_window):
    window = make_window([image_folder])
    window.on_skip()
    wait_ready(qtbot, window)
    assert window.index == 1 and window.project.records[0].status == "skipped"
    assert window.project.store.counts()["skipped"] == 1


def test_second_window_on_the_same_folder_is_read_only(qtbot, gui_model, image_folder, make_window):
    first = make_window([image_folder])
    annotate(qtbot, first)
    second = make_window([image_folder])
    assert second.project.read_only
    assert second.banner.isVisible() and "Read-only" in second.banner.text()
    assert "[read-only]" in second.windowTitle()
    drag_box(qtbot, second, (30, 40, 220, 230))
    wait_settled(qtbot, second)
    assert second.save_current("corrected") is None  # nothing is written
    assert first.save_current("corrected") == 1


def test_export_files_decode_to_the_saved_masks(qtbot, gui_model, image_folder, make_window, tmp_path):
    window = make_window([image_folder])
    masks = annotate(qtbot, window)
    rel = window.annotator.session.rel_path
    window.on_save()
    out = tmp_path / "export"
    with qtbot.waitSignal(window.export_done, timeout=20000) as blocker:
        window.export_to(out)
    written = blocker.args[0]
    assert not isinstance(written, Exception)
    stem = rel.rsplit("/", 1)[-1][: -len(".png")]
    for label, mask in masks.items():
        png = np.array(Image.open(out / "masks" / f"{stem}_{label.replace(' ', '_')}.png"))
        assert png.shape == mask.shape and set(np.unique(png)) <= {0, 255}
        assert np.array_equal(png > 0, mask)
    coco = json.loads((out / "annotations_coco.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    decoded = {names[a["category_id"]]: rle_decode(a["segmentation"]) for a in coco["annotations"]}
    assert set(decoded) == set(masks)
    for label, mask in masks.items():
        assert np.array_equal(decoded[label], mask)


def test_project_database_is_next_to_the_images(qtbot, gui_model, image_folder, make_window):
    window = make_window([image_folder])
    assert (image_folder / ".lungsam" / "project.db").is_file()
    window.close()
    with ProjectStore.open(image_folder, read_only=True) as store:
        assert store.counts()["total"] == 5


CHILD = r'''
import hashlib, os, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
sys.path.insert(0, sys.argv[2])
import numpy as np
from PySide6.QtWidgets import QApplication
app = QApplication([])
from app.gui.main_window import MainWindow
from tests.app.conftest import drag_box

def spin(cond):
    end = time.time() + 60
    while not cond():
        assert time.time() < end, "timeout"
        app.processEvents()
        time.sleep(0.005)

w = MainWindow(device="cpu", autosave_ms=300)
w.show()
w.open_paths([sys.argv[1]])
spin(lambda: w.image is not None and not w.model_loading and w.embedded_token == w.token)
drag_box(None, w, (30, 40, 220, 230))
spin(lambda: w.annotator.idle)
mask = w.annotator.session.masks["lungs"]
print("MASK", hashlib.sha256(np.packbits(mask)).hexdigest(), flush=True)
w.saved.connect(lambda rel, version: print("SAVED", version, rel, flush=True))
while True:  # keep working until killed
    app.processEvents()
    time.sleep(0.005)
'''


def test_a_killed_window_loses_nothing_autosaved(qtbot, gui_model, image_folder, make_window, tmp_path):
    import hashlib
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[4]
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(image_folder), str(repo)],
                             stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        digest = saved = None
        deadline = time.time() + 90
        while saved is None and time.time() < deadline:
            line = child.stdout.readline()
            if line.startswith("MASK"):
                digest = line.split()[1]
            elif line.startswith("SAVED"):
                saved = line.rstrip("\n").split(" ", 2)[1:]
            elif not line and child.poll() is not None:
                break
        assert digest and saved, "the child never autosaved"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    window = make_window([image_folder])  # the lock died with the process: we can write
    assert not window.project.read_only
    window.go_to(next(i for i, r in enumerate(window.project.records) if r.rel_path == saved[1]))
    wait_ready(qtbot, window)
    restored = window.annotator.session.masks["lungs"]
    assert hashlib.sha256(np.packbits(restored)).hexdigest() == digest
    assert window.project.records[window.index].status == "model"
    assert window.project.store.verify() == []


def test_undoing_everything_after_a_save_is_what_reopening_shows(qtbot, gui_model, synthetic_folder, make_window):
    """Found by the monkey: an image whose masks were all undone after a save came back with
    the saved masks, because an empty session was "nothing to save"."""
    window = make_window([synthetic_folder])
    window.go_to(0)
    wait_ready(qtbot, window)
    drag_box(qtbot, window, (10, 10, 100, 85))
    wait_settled(qtbot, window)
    assert window.save_current("corrected") == 1
    while window.annotator.undo():
        pass
    assert window.annotator.session.masks == {}
    window.go_to(1)
    wait_ready(qtbot, window)
    window.go_to(0)
    wait_ready(qtbot, window)
    assert not any(mask.any() for mask in window.annotator.session.masks.values())
    assert window.project.store.latest_annotation("img0.png").version == 2
