"""Tools > Segment folder: every new image pre-segmented in the background, annotated images
never touched, unreadable files listed, a cancel leaves nothing half-written, the live box
path never waits behind the job; then the review queue: sort by quality, D, Y."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from tests.app.conftest import drag_box, wait_ready, wait_settled
from tests.app.gui.annotate.conftest import copy_cxrs, ground_truth


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def review_folder(cxr_dir, tmp_path) -> tuple[Path, str, list[Path]]:
    """Six files: four new real CXRs, one unreadable, one already corrected (its ground truth)."""
    from engine.project import ProjectStore

    folder = tmp_path / "review"
    copy_cxrs(cxr_dir, folder, 5)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is no image")
    corrected = sorted(folder.glob("*.png"))[2].name  # a middle one
    with ProjectStore.open(folder) as store:
        store.save_annotation(corrected, {"lungs": ground_truth(cxr_dir, corrected)}, "corrected", model_name="clinician")
    masks = sorted((folder / ".lungsam" / "masks").rglob("*.png"))
    return folder, corrected, masks


def run_job(qtbot, window, timeout: int = 60000) -> None:
    window.actions["segment_folder"].trigger()
    assert window.folder_job.running
    assert window.job_progress.isVisible()
    qtbot.waitUntil(lambda: not window.folder_job.running and not window.job_progress.isVisible(), timeout=timeout)


def test_segment_folder_then_review_doubtful_first(qtbot, shipped_model, review_folder, make_window):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from app.gui.annotate.image_list import PROBLEM_ROLE, QUALITY_ROLE
    from engine.project import ProjectStore

    folder, corrected, corrected_files = review_folder
    hashes = {p: sha256(p) for p in corrected_files}
    window = make_window([folder], model=shipped_model)
    project = window.project
    run_job(qtbot, window)
    by_rel = {r.rel_path: r for r in project.records}
    new_images = [rel for rel in by_rel if rel not in (corrected, "broken.png")]
    assert len(new_images) == 4
    assert all(by_rel[rel].status == "model" for rel in new_images)
    assert {p: sha256(p) for p in corrected_files} == hashes  # corrected mask bytes unchanged
    assert by_rel[corrected].status == "corrected" and len(project.store.history(corrected)) == 1
    assert project.store.latest_annotation(corrected).kind == "corrected"
    assert by_rel["broken.png"].status == "new" and "broken.png" in project.unreadable
    broken_row = project.index_of("broken.png")
    assert window.image_list.model.index(broken_row).data(PROBLEM_ROLE)  # listed as unreadable
    assert "1 unreadable" in window.statusBar().currentMessage()
    stored = project.store.model_qualities()
    assert set(stored) == set(new_images) and all(0 < q <= 1 for q in stored.values())
    annotation = project.store.latest_annotation(new_images[0])
    assert annotation.kind == "model" and set(annotation.masks) == {"right lung", "left lung"}
    assert set(annotation.prompts["auto"]) >= {"boxes", "quality", "signals"}
    # tied to the content it was drawn on: a file replaced later does not inherit these masks
    assert annotation.image_sha256 == sha256(folder / new_images[0])
    # the image on screen when the job came by shows its masks and editable boxes
    assert set(window.canvas.box_items) == {"right lung", "left lung"}

    # most doubtful first: scored model masks by ascending quality, then new, then corrected
    window.image_list.sort.setCurrentIndex(window.image_list.sort.findData("doubtful"))
    order = [r.rel_path for r in project.records]
    scores = [stored[rel] for rel in order[:4]]
    assert scores == sorted(scores) and order[4:] == ["broken.png", corrected]
    shown = [window.image_list.model.index(row).data(QUALITY_ROLE) for row in range(4)]
    assert shown == pytest.approx(scores, abs=1e-4)
    assert window.actions["sort_doubtful"].isChecked()

    window.activateWindow()
    current = project.records[window.index].rel_path
    QTest.keyClick(window, Qt.Key.Key_D)  # the most doubtful unreviewed image (not this one)
    wait_ready(qtbot, window)
    expected = min((rel for rel in new_images if rel != current), key=stored.get)
    assert project.records[window.index].rel_path == expected
    assert f"most doubtful of 4 unreviewed: quality {stored[expected]:.3f}" in window.statusBar().currentMessage()
    masks_shown = {k: v.copy() for k, v in window.annotator.session.masks.items()}
    QTest.keyClick(window, Qt.Key.Key_Y)  # accept as reviewed, then the next doubtful
    wait_ready(qtbot, window)
    accepted = project.store.latest_annotation(expected)
    assert accepted.kind == "corrected" and accepted.version == 2
    assert all(np.array_equal(accepted.masks[k], masks_shown[k]) for k in masks_shown)
    now = project.records[window.index]
    assert now.rel_path != expected and now.status == "model"
    assert now.rel_path == min((rel for rel in new_images if rel != expected), key=stored.get)

    window.close()  # the scores survive a restart
    with ProjectStore.open(folder, read_only=True) as store:
        assert store.model_qualities() == stored


def test_cancel_half_way_leaves_whole_annotations_and_corrected_masks_alone(qtbot, shipped_model, review_folder, cxr_dir, make_window):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from engine.imaging import load_image

    folder, corrected, corrected_files = review_folder
    copy_cxrs(cxr_dir, folder, 4, start=5)  # nine new images in all
    hashes = {p: sha256(p) for p in corrected_files}
    window = make_window([folder], model=shipped_model)

    def slow_load(path):
        time.sleep(0.15)
        return load_image(path)

    window.folder_job.loader = slow_load
    saved = []
    window.saved.connect(lambda rel, version: saved.append(rel))
    window.actions["segment_folder"].trigger()
    qtbot.waitUntil(lambda: window.job_progress.bar.value() >= 2, timeout=30000)
    assert "images/s" in window.job_progress.text.text()
    QTest.mouseClick(window.job_progress.cancel, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.folder_job.running, timeout=30000)
    qtbot.waitUntil(lambda: "cancelled" in window.statusBar().currentMessage(), timeout=5000)
    store = window.project.store
    records = {r.rel_path: r for r in window.project.records}
    done = [rel for rel, r in records.items() if r.status == "model"]
    untouched = [rel for rel, r in records.items() if r.status == "new"]
    assert 2 <= len(done) < 9 and len(untouched) >= 2
    for rel in done:  # each one whole: one version, both masks readable (sha256-checked)
        assert [a.version for a in store.history(rel)] == [1]
        assert set(store.latest_annotation(rel).masks) == {"right lung", "left lung"}
    assert all(store.history(rel) == [] for rel in untouched)
    assert {p: sha256(p) for p in corrected_files} == hashes
    assert records[corrected].status == "corrected" and len(store.history(corrected)) == 1
    files = {p.relative_to(store.masks_dir).as_posix() for p in store.masks_dir.rglob("*.png")}
    referenced = {row[0] for row in store._query("SELECT file FROM annotation_masks")}
    assert files == referenced  # every mask file on disk belongs to a saved version


def test_a_box_drag_gets_its_mask_while_the_folder_job_runs(qtbot, shipped_model, cxr_dir, tmp_path, make_window):
    from engine.imaging import load_image

    copy_cxrs(cxr_dir, tmp_path / "many", 8)
    window = make_window([tmp_path / "many"], model=shipped_model)

    def slow_load(path):
        time.sleep(0.25)  # the job takes >= 2 s in all, whatever the CPU
        return load_image(path)

    window.folder_job.loader = slow_load
    window.actions["segment_folder"].trigger()
    qtbot.waitUntil(lambda: window.job_progress.bar.value() >= 1, timeout=30000)
    results = window.annotator.results
    start = time.perf_counter()
    drag_box(qtbot, window, (30, 40, 220, 230))  # a new box, or an edit of a proposed box
    wait_settled(qtbot, window)
    seconds = time.perf_counter() - start
    request = window.annotator.last_request
    assert request.final and window.annotator.results > results
    assert window.annotator.session.masks[request.label].any()
    assert window.folder_job.running, "the box's mask waited for the whole folder job"
    assert window.job_progress.bar.value() < 8
    assert seconds < 5.0
    window.cancel_folder_job()
    qtbot.waitUntil(lambda: not window.folder_job.running, timeout=30000)
