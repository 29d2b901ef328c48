"""engine.project.store: persistence, validation, schema and model versions of annotations."""

from __future__ import annotations

import hashlib
import io
import os
import random
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import LungSamError
from engine.project import (
    LABELS,
    STATUSES,
    ImageNotInProjectError,
    MaskShapeError,
    ProjectLockedError,
    ProjectStore,
    ProjectStoreError,
    UnknownLabelError,
)
from engine.project import store as ps
from engine.project.mask_png import decode_mask_png, encode_mask_png
from tests.engine.project.store_helpers import lung_masks


def test_open_creates_layout_with_wal_full_sync_and_schema_version(folder: Path) -> None:
    with ProjectStore.open(folder) as store:
        assert (folder / ".lungsam" / "project.db").is_file()
        assert (folder / ".lungsam" / "masks").is_dir()
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == ps.SCHEMA_VERSION
        lock_text = (folder / ".lungsam" / "lock").read_text().split()
        assert int(lock_text[0]) == os.getpid()
        # a reader waits up to 10 s for a writer's commit instead of failing at once
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == ps.BUSY_TIMEOUT_MS == 10_000
        with ProjectStore.open(folder, read_only=True) as viewer:
            assert viewer.read_only and viewer.read_only_reason == ProjectStore.SHARED
            assert viewer._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
            assert viewer._conn.execute("PRAGMA query_only").fetchone()[0] == 1
    assert (folder / ".lungsam" / "lock").read_text() == ""  # no stale pid left behind
    with pytest.raises(ProjectStoreError, match="the project is closed"):
        store.list_images()
    with pytest.raises(ProjectStoreError, match="the project is closed"):
        store.register_images(["a.png"])
    store.close()  # closing twice is harmless


def test_register_5000_images_is_fast_idempotent_and_sorted(tmp_path: Path) -> None:
    names = [f"p{i % 7}/img{i:05d}.png" for i in range(5000)]
    random.Random(0).shuffle(names)
    with ProjectStore.open(tmp_path) as store:
        start = time.perf_counter()
        added = store.register_images(names)
        register_s = time.perf_counter() - start
        assert added == 5000 and register_s < 1.0
        assert store.register_images([tmp_path / n for n in names[:100]]) == 0
        start = time.perf_counter()
        records = store.list_images()
        list_s = time.perf_counter() - start
        assert list_s < 0.5
        assert [r.rel_path for r in records] == sorted(names)
        assert all(
            r.status == "new" and r.latest_version is None and r.updated is None for r in records
        )
        assert store.counts() == {
            "new": 5000,
            "model": 0,
            "corrected": 0,
            "skipped": 0,
            "total": 5000,
        }


def test_register_accepts_absolute_paths_and_refuses_outside(
    store: ProjectStore, tmp_path: Path
) -> None:
    assert store.register_images([store.root / "sub" / "./c.dcm", "sub/../a.png"]) == 0
    with pytest.raises(ImageNotInProjectError, match="not inside the project folder"):
        store.register_images([tmp_path / "elsewhere.png"])
    with pytest.raises(ImageNotInProjectError):
        store.register_images(["../escape.png"])


def test_save_sets_status_and_reopen_restores_everything(folder: Path) -> None:
    first, second = lung_masks(), lung_masks(shift=2)
    with ProjectStore.open(folder) as store:
        store.register_images(["a.png", "b.png", "sub/c.dcm"])
        assert (
            store.save_annotation(
                "a.png", first, "model", "base", "h1", {"box": np.array([1, 2, 30, 40])}
            )
            == 1
        )
        assert (
            store.save_annotation("a.png", second, "corrected", prompts={"points": [[3, 4, 1]]})
            == 2
        )
        store.set_status("b.png", "skipped")
        store.add_model_version("m1", folder / "models" / "m1", {"base": "sam"}, {"dice": 0.9})
        store.set_active_model("m1")
    with ProjectStore.open(folder) as store:
        statuses = {r.rel_path: (r.status, r.latest_version) for r in store.list_images()}
        assert statuses == {
            "a.png": ("corrected", 2),
            "b.png": ("skipped", None),
            "sub/c.dcm": ("new", None),
        }
        latest = store.latest_annotation("a.png")
        assert (
            latest.version == 2
            and latest.kind == "corrected"
            and latest.prompts == {"points": [[3, 4, 1]]}
        )
        for label in LABELS:
            np.testing.assert_array_equal(latest.masks[label], second[label])
        model = store.latest_annotation("a.png", kind="model")
        assert (model.version, model.model_name, model.model_hash) == (1, "base", "h1")
        assert model.prompts == {"box": [1, 2, 30, 40]}
        np.testing.assert_array_equal(model.masks["left lung"], first["left lung"])
        assert [(a.version, a.kind, a.masks) for a in store.history("a.png")] == [
            (1, "model", {}),
            (2, "corrected", {}),
        ]
        assert set(store.history("a.png", with_masks=True)[0].masks) == set(LABELS)
        np.testing.assert_array_equal(
            store.load_annotation("a.png", 1).masks["lungs"], first["lungs"]
        )
        assert store.active_model()["name"] == "m1"
        assert store.active_model()["path"] == str(folder / "models" / "m1")
        assert store.counts() == {"new": 1, "model": 0, "corrected": 1, "skipped": 1, "total": 3}
        assert store.verify() == []


def test_mask_files_are_1_bit_pngs_at_original_size_with_recorded_sha(store: ProjectStore) -> None:
    masks = lung_masks(50, 70)
    store.save_annotation("sub/c.dcm", masks, "model")
    rows = store._conn.execute(
        "SELECT label, file, sha256, width, height FROM annotation_masks"
    ).fetchall()
    assert len(rows) == 3
    for label, file, sha, width, height in rows:
        path = store.masks_dir / file
        assert path.name == f"v1_{label.replace(' ', '_')}.png"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
        with Image.open(path) as image:
            assert image.mode == "1"  # a quarter of the 8-bit file, half the encoding time
            pixels = np.asarray(image.convert("L"))
        assert pixels.shape == (50, 70) == (height, width) and set(np.unique(pixels)) <= {0, 255}
        np.testing.assert_array_equal(pixels == 255, masks[label])


def test_8_bit_mask_files_of_earlier_versions_still_read() -> None:
    mask = lung_masks(50, 70)["left lung"]
    old = encode_mask_png(mask, {"label": "left lung"}, bits=8)
    with Image.open(io.BytesIO(old)) as image:
        assert image.mode == "L"
    np.testing.assert_array_equal(decode_mask_png(old), mask)
    np.testing.assert_array_equal(decode_mask_png(encode_mask_png(mask, bits=1)), mask)
    with pytest.raises(ValueError, match="1 or 8 bits"):
        encode_mask_png(mask, bits=4)


def test_masks_accept_uint8_and_keep_label_order(store: ProjectStore) -> None:
    masks = lung_masks()
    store.save_annotation(
        "a.png", {"left lung": masks["left lung"].astype(np.uint8) * 255}, "model"
    )
    loaded = store.latest_annotation("a.png").masks
    assert list(loaded) == ["left lung"] and loaded["left lung"].dtype == bool
    np.testing.assert_array_equal(loaded["left lung"], masks["left lung"])


def test_corrected_items_use_latest_corrected_version_and_leave_out_skipped(
    store: ProjectStore,
) -> None:
    store.save_annotation("a.png", lung_masks(), "corrected")
    store.save_annotation("a.png", lung_masks(shift=1), "corrected")
    store.save_annotation(
        "a.png", lung_masks(shift=3), "model"
    )  # newer model output: not trained on
    store.save_annotation("b.png", lung_masks(), "corrected")
    store.set_status("b.png", "skipped")
    store.save_annotation("sub/c.dcm", lung_masks(), "model")
    items = store.corrected_items()
    assert [image for image, _ in items] == [store.root / "a.png"]
    masks = items[0][1]
    assert set(masks) == set(LABELS) and all(
        p.is_absolute() and p.is_file() for p in masks.values()
    )
    assert masks["right lung"].name == "v2_right_lung.png"
    np.testing.assert_array_equal(
        np.asarray(Image.open(masks["lungs"])) > 0, lung_masks(shift=1)["lungs"]
    )


def test_unknown_label_is_refused_before_any_file_is_written(store: ProjectStore) -> None:
    with pytest.raises(UnknownLabelError, match="unknown label 'heart'"):
        store.save_annotation("a.png", {"heart": np.ones((4, 4), bool)}, "model")
    assert not any(store.masks_dir.rglob("*.png"))


def test_mask_shape_mismatch_with_earlier_annotations_is_refused(store: ProjectStore) -> None:
    store.save_annotation("a.png", lung_masks(48, 40), "model")
    with pytest.raises(MaskShapeError, match="40 x 48"):
        store.save_annotation("a.png", lung_masks(40, 48), "corrected")
    with pytest.raises(MaskShapeError, match="differ in size"):
        store.save_annotation(
            "b.png", {"lungs": np.zeros((5, 5)), "left lung": np.zeros((5, 6))}, "model"
        )
    with pytest.raises(MaskShapeError, match="2-D"):
        store.save_annotation("b.png", {"lungs": np.zeros(5)}, "model")
    assert store.latest_annotation("a.png").version == 1


def test_missing_image_status_and_kind_errors_are_clear(store: ProjectStore) -> None:
    with pytest.raises(ImageNotInProjectError, match="ghost.png: this image is not in the project"):
        store.save_annotation("ghost.png", lung_masks(), "model")
    with pytest.raises(ImageNotInProjectError):
        store.set_status("ghost.png", "skipped")
    with pytest.raises(ImageNotInProjectError, match="no annotation version 3"):
        store.load_annotation("a.png", 3)
    with pytest.raises(ProjectStoreError, match="unknown status"):
        store.set_status("a.png", "done")
    with pytest.raises(ProjectStoreError, match="unknown annotation kind"):
        store.save_annotation("a.png", lung_masks(), "final")
    assert store.latest_annotation("ghost.png") is None and store.history("ghost.png") == []
    (store.root / "new.png").write_bytes(b"x")  # exists on disk: registered on first save
    assert store.save_annotation("new.png", lung_masks(), "model") == 1
    assert issubclass(ProjectLockedError, LungSamError) and set(STATUSES) >= {"new", "skipped"}


def test_orphan_files_from_an_uncommitted_save_are_removed_on_open(folder: Path) -> None:
    with ProjectStore.open(folder) as store:
        store.save_annotation("a.png", lung_masks(), "model")
        image_id = store.list_images()[0].id
    orphan_dir = folder / ".lungsam" / "masks" / str(image_id)
    (orphan_dir / "v2_lungs.png").write_bytes(b"not committed")
    (orphan_dir / ".v2_left_lung.png.abc.tmp").write_bytes(b"half")
    (folder / ".lungsam" / "masks" / "99").mkdir()
    (folder / ".lungsam" / "masks" / "99" / "v1_lungs.png").write_bytes(b"x")
    with ProjectStore.open(folder, read_only=True) as reader:  # readers never delete
        assert (orphan_dir / "v2_lungs.png").exists()
        assert reader.latest_annotation("a.png").version == 1
    with ProjectStore.open(folder) as store:
        assert sorted(p.name for p in orphan_dir.iterdir()) == [
            "v1_left_lung.png",
            "v1_lungs.png",
            "v1_right_lung.png",
        ]
        assert not (folder / ".lungsam" / "masks" / "99" / "v1_lungs.png").exists()
        assert store.save_annotation("a.png", lung_masks(shift=1), "corrected") == 2
        assert store.verify() == []


def test_mask_file_changed_outside_is_detected(store: ProjectStore) -> None:
    store.save_annotation("a.png", lung_masks(), "model")
    path = next(store.masks_dir.rglob("v1_lungs.png"))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ProjectStoreError, match="changed outside LungSAM"):
        store.latest_annotation("a.png")
    path.unlink()
    assert any("missing" in problem for problem in store.verify())


def test_model_versions_upsert_and_activate(store: ProjectStore, tmp_path: Path) -> None:
    first = store.add_model_version(
        "stage1", tmp_path / "m1", {"base": "sam_vit_b"}, {"dice": 0.91}
    )
    second = store.add_model_version(
        "stage2", store.root / "models" / "m2", {"base": "stage1"}, {"dice": 0.93}
    )
    assert store.active_model() is None
    store.set_active_model("stage2")
    assert (
        store.add_model_version(
            "stage2", store.root / "models" / "m2b", {"base": "stage1"}, {"dice": 0.94}
        )
        == second
    )
    versions = store.list_model_versions()
    assert [(v["id"], v["name"], v["active"]) for v in versions] == [
        (first, "stage1", False),
        (second, "stage2", True),
    ]
    assert versions[1]["metrics"] == {"dice": 0.94} and versions[1]["path"] == str(
        store.root / "models" / "m2b"
    )
    store.set_active_model("stage1")
    assert store.active_model()["name"] == "stage1"
    with pytest.raises(ProjectStoreError, match="no model version named 'nope'"):
        store.set_active_model("nope")


def test_image_records_are_frozen(store: ProjectStore) -> None:
    import dataclasses

    record = store.list_images()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = "corrected"  # type: ignore[misc]


def test_latest_annotations_yield_each_annotated_image_once_by_path(store: ProjectStore) -> None:
    store.save_annotation("b.png", lung_masks(), "model")
    store.save_annotation("b.png", lung_masks(), "corrected")
    store.save_annotation("a.png", lung_masks(), "model")
    assert [(r.rel_path, a.version, a.kind) for r, a in store.latest_annotations()] == [
        ("a.png", 1, "model"), ("b.png", 2, "corrected")]
    assert [(r.rel_path, a.version) for r, a in store.latest_annotations("model")] == [
        ("a.png", 1), ("b.png", 1)]
    assert [r.rel_path for r, _ in store.latest_annotations("corrected")] == ["b.png"]
    assert all(a.masks for _, a in store.latest_annotations())  # with their masks


def test_every_way_of_opening_serves_the_gui_worker_threads(folder: Path) -> None:
    """The window saves and reads from worker threads: one connection shared across them."""
    import threading

    def from_a_thread(store: ProjectStore) -> list[str]:
        out: list = []
        worker = threading.Thread(target=lambda: out.extend(r.rel_path for r in store.list_images()))
        worker.start()
        worker.join()
        return out

    with ProjectStore.open(folder) as writer:
        writer.register_images(["a.png"])
        assert from_a_thread(writer) == ["a.png"]
        with ProjectStore.open(folder, read_only=True) as viewer:
            assert from_a_thread(viewer) == ["a.png"]
    with ProjectStore.open_copy(folder, "shown read-only") as copy:
        assert from_a_thread(copy) == ["a.png"]


def test_a_viewer_beside_a_writer_never_copies_the_live_database(folder: Path, monkeypatch) -> None:
    """A copy taken while the writer commits can be torn; beside a live writer the file is read
    through a read-only connection instead (health.inspect_database(copy=False))."""
    asked: list[bool] = []
    real = ps.inspect_database
    monkeypatch.setattr(ps, "inspect_database", lambda root, copy=True: asked.append(copy) or real(root, copy))
    with ProjectStore.open(folder) as writer:
        writer.register_images(["a.png"])
        asked.clear()
        with ProjectStore.open(folder, read_only=True):
            assert asked == [False]


def test_a_read_only_open_of_an_older_project_reads_an_upgraded_copy(tmp_path: Path) -> None:
    import shutil

    from tests.engine.project.fixtures.make_release_fixture import TARGET as RELEASE_1
    from tests.engine.project.store_helpers import tree_digest

    old = Path(shutil.copytree(RELEASE_1, tmp_path / "release_1"))

    def content(root: Path) -> dict:  # SQLite's empty -wal/-shm of a read-only connection aside
        return {k: v for k, v in tree_digest(root).items() if not k.endswith(("-wal", "-shm"))}

    before = content(old)
    with ProjectStore.open(old, read_only=True) as view:
        assert view._copy_dir is not None and view._copy_dir.is_dir()
        assert view.latest_annotation("a.png").version == 2
        copy_dir = view._copy_dir
    assert not copy_dir.exists()  # the private copy goes with the view
    assert content(old) == before


def test_a_failed_read_only_copy_cleans_up_and_reports_its_own_error(
    folder: Path, tmp_path: Path, monkeypatch
) -> None:
    import tempfile

    with ProjectStore.open(folder) as writer:
        writer.register_images(["a.png"])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    real_rmtree = ps.shutil.rmtree

    def stubborn_rmtree(path, ignore_errors=False, **kwargs):  # a copy that will not go quietly
        real_rmtree(path, ignore_errors=True)
        if not ignore_errors and "lungsam-readonly-" in str(path):
            raise OSError("device busy")

    def copy_fails(root, target):
        raise ProjectStoreError("the copy failed")

    monkeypatch.setattr(ps.shutil, "rmtree", stubborn_rmtree)
    with monkeypatch.context() as m:
        m.setattr(ps, "copy_database", copy_fails)
        with pytest.raises(ProjectStoreError, match="the copy failed"):  # not the clean-up's error
            ProjectStore.open_copy(folder, "shown read-only")
    assert list(scratch.iterdir()) == []
    view = ProjectStore.open_copy(folder, "shown read-only")
    assert len(list(scratch.iterdir())) == 1
    view.close()  # nor does closing fail on it
    assert list(scratch.iterdir()) == []


def test_a_folder_where_the_project_folder_cannot_be_made_opens_read_only(folder: Path, monkeypatch) -> None:
    from engine.project import UnwritableProjectError

    real_mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self.name == "masks":
            raise PermissionError(13, "Permission denied")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(UnwritableProjectError, match=r"cannot create \.lungsam \(Permission denied\); opened read-only"):
        ProjectStore.open(folder)
    monkeypatch.undo()
    with ProjectStore.open(folder) as store:  # the lock was let go
        assert store.list_images() == []


def test_a_save_remakes_a_masks_folder_removed_while_the_project_was_open(store: ProjectStore) -> None:
    import shutil

    shutil.rmtree(store.masks_dir)  # a clean-up tool, or a user tidying hidden folders
    assert store.save_annotation("a.png", lung_masks(), "corrected") == 1
    assert store.latest_annotation("a.png").masks


def test_annotations_are_frozen_and_compared_by_identity(store: ProjectStore) -> None:
    """Masks are arrays: a field-wise == would raise on them, so two loads are two objects."""
    import dataclasses

    store.save_annotation("a.png", lung_masks(), "corrected")
    first, second = store.latest_annotation("a.png"), store.latest_annotation("a.png")
    assert first == first and first != second  # no ValueError from comparing arrays
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.kind = "model"  # type: ignore[misc]


def test_a_mask_file_gone_from_disk_is_a_store_error_naming_it(store: ProjectStore) -> None:
    store.save_annotation("a.png", lung_masks(), "corrected")
    png = next(store.masks_dir.rglob("*.png"))
    png.unlink()
    with pytest.raises(ProjectStoreError, match=rf"a.png: mask file .*{png.name} is missing"):
        store.latest_annotation("a.png")
