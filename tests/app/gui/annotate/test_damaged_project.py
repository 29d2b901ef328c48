"""The window on projects it must not change: a damaged database, a newer LungSAM's project, a
read-only folder (read-only, the banner says why, nothing written, not even UI state); and on
files that change underneath: replaced images are flagged (their old masks are not laid on
the new pixels), deleted ones listed as missing, nothing lost."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from PIL import Image

from engine.project import ProjectStore
from tests.app.conftest import drag_box, synthetic_cxr, wait_ready, wait_settled
from tests.engine.project.store_helpers import read_only_view, tree_digest

BOX = (10, 10, 100, 85)


def lungs_of(shape: tuple[int, int]) -> dict[str, np.ndarray]:
    mask = np.zeros(shape, bool)
    mask[20:70, 15:45] = True
    return {"lungs": mask}


@pytest.fixture
def annotated(synthetic_folder):
    """img0 annotated (version 1) through the store, as an earlier session left it."""
    with ProjectStore.open(synthetic_folder) as store:
        store.register_images([p.name for p in synthetic_folder.glob("*.png")])
        store.save_annotation("img0.png", lungs_of((96, 112)), "corrected", model_name="tiny-default")
    return synthetic_folder


def work_and_close(qtbot, window) -> None:
    """What a user does in a read-only window: a box, save, next image, close."""
    drag_box(qtbot, window, BOX)
    wait_settled(qtbot, window)
    assert window.save_current("corrected") is None
    window.on_next_image()
    wait_ready(qtbot, window)
    window.close()


def test_a_corrupt_database_opens_read_only_and_nothing_is_written(qtbot, gui_model, annotated, make_window):
    (annotated / ".lungsam" / "project.db").write_bytes(b"this is not a database" * 100)
    before = tree_digest(annotated)
    window = make_window([annotated])
    assert window.project.read_only and "[read-only]" in window.windowTitle()
    text = window.banner.text()
    assert window.banner.isVisible() and "the project database is corrupt or not a database" in text
    assert "Your edits in this window are not saved" in text and "--repair" in text
    assert len(window.project.records) == 4  # the images still show
    work_and_close(qtbot, window)
    assert tree_digest(annotated) == before  # not even gui-state.json


def test_a_newer_project_is_shown_read_only_with_its_masks(qtbot, gui_model, annotated, make_window):
    with ProjectStore.open(annotated):
        pass
    conn = sqlite3.connect(annotated / ".lungsam" / "project.db")
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    before = tree_digest(annotated)
    window = make_window([annotated])
    window.go_to(0)
    wait_ready(qtbot, window)
    assert window.project.read_only and "newer LungSAM (schema 99" in window.banner.text()
    assert np.array_equal(window.annotator.session.masks["lungs"], lungs_of((96, 112))["lungs"])
    work_and_close(qtbot, window)
    assert tree_digest(annotated) == before


def test_a_read_only_file_system_opens_read_only(qtbot, gui_model, annotated, make_window, tmp_path):
    before = tree_digest(annotated)
    with read_only_view(annotated, tmp_path / "ro") as view:
        window = make_window([view])
        assert window.project.read_only and "read-only file system" in window.banner.text()
        window.go_to(0)
        wait_ready(qtbot, window)
        assert window.annotator.session.masks["lungs"].any()
        work_and_close(qtbot, window)
    assert tree_digest(annotated) == before


def test_a_missing_mask_file_is_reported_for_its_image(qtbot, gui_model, annotated, make_window):
    (annotated / ".lungsam" / "masks" / "1" / "v1_lungs.png").unlink()
    window = make_window([annotated])
    assert not window.project.read_only
    assert "img0.png: a mask file of version 1 is missing" in window.banner.text()
    row = next(i for i, r in enumerate(window.project.records) if r.rel_path == "img0.png")
    assert window.image_list.model.data(window.image_list.model.index(row)).startswith("\u26a0")


def test_an_image_replaced_between_sessions_does_not_inherit_its_masks(qtbot, gui_model, annotated, make_window):
    Image.fromarray(synthetic_cxr(42)).save(annotated / "img0.png")  # same size, other content
    window = make_window([annotated])
    window.go_to(0)
    wait_ready(qtbot, window)
    assert window.annotator.session.masks == {}  # the old mask is not laid on the new image
    assert "img0.png: the image file changed since version 1 was saved" in window.banner.text()
    drag_box(qtbot, window, BOX)
    wait_settled(qtbot, window)
    assert window.save_current("corrected") == 2  # a new version, drawn on the new content
    assert "img0.png" not in window.banner.text()
    store = window.project.store
    old, new = store.history("img0.png")
    assert old.image_sha256 != new.image_sha256 == window.image.source[0]
    assert np.array_equal(store.load_annotation("img0.png", 1).masks["lungs"], lungs_of((96, 112))["lungs"])


def test_an_image_replaced_while_open_is_flagged_when_shown_again(qtbot, gui_model, annotated, make_window):
    window = make_window([annotated])
    window.go_to(0)
    wait_ready(qtbot, window)
    assert window.annotator.session.masks["lungs"].any()
    window.go_to(1)
    wait_ready(qtbot, window)
    Image.fromarray(synthetic_cxr(43)).save(annotated / "img0.png")
    window.go_to(0)
    wait_ready(qtbot, window)
    assert window.annotator.session.masks == {}
    assert "changed since version 1" in window.project.problems["img0.png"]


def test_a_deleted_image_stays_listed_as_missing_with_its_masks(qtbot, gui_model, annotated, make_window):
    (annotated / "img0.png").unlink()
    window = make_window([annotated])
    rels = [r.rel_path for r in window.project.records]
    assert rels == ["img0.png", "img1.png", "img2.png", "img3.png"]
    assert window.project.problems["img0.png"].startswith("the image file is missing (1 saved versions")
    assert "img0.png: the image file is missing" in window.banner.text()
    assert window.project.store.latest_annotation("img0.png").version == 1


def test_an_image_renamed_between_sessions_keeps_its_masks(qtbot, gui_model, annotated, make_window):
    (annotated / "img0.png").rename(annotated / "renamed.png")
    window = make_window([annotated])
    assert window.project.renamed == [("img0.png", "renamed.png")]
    assert [r.rel_path for r in window.project.records] == ["img1.png", "img2.png", "img3.png", "renamed.png"]
    window.go_to(3)
    wait_ready(qtbot, window)
    assert np.array_equal(window.annotator.session.masks["lungs"], lungs_of((96, 112))["lungs"])
    assert not window.banner.isVisible()


def test_an_image_deleted_while_open_is_flagged_and_its_masks_kept(qtbot, gui_model, annotated, make_window):
    window = make_window([annotated])
    window.go_to(1)
    wait_ready(qtbot, window)
    (annotated / "img0.png").unlink()
    window.go_to(0)
    qtbot.waitUntil(lambda: "img0.png" in window.project.problems, timeout=20000)
    assert "img0.png" in window.banner.text()
    assert window.save_current("corrected") is None  # no image shown: nothing to save over it
    assert window.project.store.latest_annotation("img0.png").version == 1
