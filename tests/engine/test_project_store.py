"""engine.project.store: persistence, validation, locking and kill safety of annotations."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
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
    ReadOnlyProjectError,
    UnknownLabelError,
)
from engine.project import store as ps

REPO = Path(__file__).resolve().parents[2]
KILL_SAVER = Path(__file__).with_name("kill_saver.py")
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def lung_masks(height: int = 48, width: int = 40, shift: int = 0) -> dict[str, np.ndarray]:
    """Right lung on the image's left, left lung on the image's right (patient's view)."""
    yy, xx = np.mgrid[:height, :width]
    right = ((xx - 0.3 * width - shift) / (0.15 * width)) ** 2 + (
        (yy - height / 2) / (0.3 * height)
    ) ** 2 < 1
    left = ((xx - 0.7 * width - shift) / (0.15 * width)) ** 2 + (
        (yy - height / 2) / (0.3 * height)
    ) ** 2 < 1
    return {"lungs": right | left, "right lung": right, "left lung": left}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "cxr"
    (root / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "sub/c.dcm"):
        (root / name).write_bytes(b"x")
    return root


@pytest.fixture
def store(folder: Path):
    with ProjectStore.open(folder) as opened:
        opened.register_images(["a.png", "b.png", "sub/c.dcm"])
        yield opened


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


def test_mask_files_are_0_255_pngs_at_original_size_with_recorded_sha(store: ProjectStore) -> None:
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
        pixels = np.asarray(Image.open(path))
        assert pixels.shape == (50, 70) == (height, width) and set(np.unique(pixels)) <= {0, 255}
        np.testing.assert_array_equal(pixels == 255, masks[label])


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


def test_second_writer_in_same_process_is_locked_out_and_read_only_window_reads(
    folder: Path,
) -> None:
    writer = ProjectStore.open(folder)
    try:
        writer.register_images(["a.png"])
        with pytest.raises(
            ProjectLockedError, match=rf"open in another LungSAM window \(pid {os.getpid()}"
        ) as info:
            ProjectStore.open(folder)
        assert info.value.pid == os.getpid()
        with ProjectStore.open(folder, read_only=True) as reader:
            assert reader.read_only and reader.latest_annotation("a.png") is None
            writer.save_annotation("a.png", lung_masks(), "model")
            assert reader.latest_annotation("a.png").version == 1  # sees the writer's commit
            assert reader.counts()["model"] == 1
            for write in (
                lambda: reader.save_annotation("a.png", lung_masks(), "corrected"),
                lambda: reader.set_status("a.png", "skipped"),
                lambda: reader.register_images(["b.png"]),
                lambda: reader.add_model_version("m", "m", {}, {}),
                reader.vacuum_orphans,
            ):
                with pytest.raises(ReadOnlyProjectError, match="read-only"):
                    write()
    finally:
        writer.close()
    with ProjectStore.open(folder) as again:  # lock released on close
        assert again.latest_annotation("a.png").kind == "model"


def test_read_only_open_needs_an_existing_project(folder: Path) -> None:
    with pytest.raises(ProjectStoreError, match="no LungSAM project here yet"):
        ProjectStore.open(folder, read_only=True)
    with pytest.raises(ProjectStoreError, match="does not exist"):
        ProjectStore.open(folder / "nope")


def test_lock_held_by_another_process(folder: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from engine.project.store import ProjectStore\n"
            "s = ProjectStore.open(sys.argv[1]); s.register_images(['a.png'])\n"
            "print('ready', flush=True); sys.stdin.read(); s.close()",
            str(folder),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=CHILD_ENV,
        cwd=REPO,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(ProjectLockedError, match=f"pid {holder.pid}") as info:
            ProjectStore.open(folder)
        assert info.value.pid == holder.pid
        with ProjectStore.open(folder, read_only=True) as reader:
            assert [r.rel_path for r in reader.list_images()] == ["a.png"]
    finally:
        holder.communicate("", timeout=30)
    with ProjectStore.open(folder) as store:
        assert store.counts()["total"] == 1


def test_read_only_window_reads_while_another_process_saves(tmp_path: Path) -> None:
    root = tmp_path / "busy"
    root.mkdir()
    child = subprocess.Popen([sys.executable, str(KILL_SAVER), str(root), "3"], env=CHILD_ENV)
    try:
        _wait_for_writer(root, child)
        deadline = time.monotonic() + 1.5
        reads = 0
        while time.monotonic() < deadline or (reads < 3 and time.monotonic() < deadline + 15):
            try:
                reader = ProjectStore.open(root, read_only=True)
            except ProjectStoreError:  # schema not created yet by the child
                time.sleep(0.02)
                continue
            with reader:
                for record in reader.list_images():
                    latest = reader.latest_annotation(record.rel_path)
                    if latest is not None:
                        # a save may have landed between the listing and this read
                        assert latest.version >= (record.latest_version or 1)
                        assert all(
                            m.shape == next(iter(latest.masks.values())).shape
                            for m in latest.masks.values()
                        )
                        reads += 1
    finally:
        child.kill()
        child.wait()
    assert reads >= 3


def test_threads_saving_concurrently_get_consecutive_versions(store: ProjectStore) -> None:
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            for i in range(6):
                store.save_annotation(name, lung_masks(shift=i), "model" if i % 2 else "corrected")
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(n,)) for n in ("a.png", "b.png", "sub/c.dcm", "a.png")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [a.version for a in store.history("a.png")] == list(range(1, 13))
    assert store.verify() == []


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


def test_migration_hook_upgrades_an_older_schema(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ProjectStore.open(folder) as store:
        store.register_images(["a.png"])

    def add_note_column(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE images ADD COLUMN note TEXT")

    monkeypatch.setattr(ps, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(ps.MIGRATIONS, 1, add_note_column)
    with pytest.raises(ProjectStoreError, match="open the project for writing once"):
        ProjectStore.open(folder, read_only=True)
    with ProjectStore.open(folder) as store:
        assert store._conn.execute("SELECT version FROM schema_version").fetchone()[0] == 2
        assert "note" in [row[1] for row in store._conn.execute("PRAGMA table_info(images)")]
        assert store.counts()["total"] == 1
    monkeypatch.setattr(ps, "SCHEMA_VERSION", 1)
    with pytest.raises(ProjectStoreError, match="newer LungSAM"):
        ProjectStore.open(folder)
    monkeypatch.setattr(ps, "SCHEMA_VERSION", 2)
    with ProjectStore.open(folder) as store:  # the failed open left no lock behind
        assert store.counts()["total"] == 1


# ------------------------------------------------------------------------ kill safety

KILL_TRIALS = 50


def _wait_for_writer(root: Path, child: subprocess.Popen, timeout: float = 20.0) -> None:
    """Until the child holds the project lock (it writes its pid there once it has it)."""
    lock = root / ".lungsam" / "lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.poll() is None, f"kill_saver exited early with {child.returncode}"
        try:
            if lock.read_text().split()[:1] == [str(child.pid)]:
                return
        except (OSError, IndexError):
            pass
        time.sleep(0.005)
    raise AssertionError("kill_saver did not open the project in time")


def _check_after_kill(root: Path) -> int:
    """Independent check with plain sqlite3 and hashlib; returns annotation rows verified."""
    masks_dir = root / ".lungsam" / "masks"
    conn = sqlite3.connect(root / ".lungsam" / "project.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = conn.execute(
            "SELECT a.id, a.image_id, a.version, a.kind, i.status FROM annotations a"
            " JOIN images i ON i.id = a.image_id ORDER BY a.image_id, a.version"
        ).fetchall()
        versions: dict[int, list[int]] = {}
        for ann_id, image_id, version, _kind, _status in rows:
            versions.setdefault(image_id, []).append(version)
            files = conn.execute(
                "SELECT file, sha256, width, height FROM annotation_masks WHERE annotation_id = ?",
                (ann_id,),
            ).fetchall()
            assert files, f"annotation {ann_id} has no masks"
            for file, sha, width, height in files:
                data = (masks_dir / file).read_bytes()
                assert hashlib.sha256(data).hexdigest() == sha, f"{file} differs from its sha256"
                assert Image.open(masks_dir / file).size == (width, height)
        for image_id, found in versions.items():
            assert found == list(range(1, len(found) + 1)), f"image {image_id}: versions {found}"
        latest = {
            image_id: kind for _id, image_id, _v, kind, _s in rows
        }  # rows are version-ordered
        statuses = {image_id: status for _id, image_id, _v, _k, status in rows}
        assert latest == statuses, "an image's status disagrees with its newest annotation"
        return len(rows)
    finally:
        conn.close()


def test_sigkill_during_saves_never_corrupts(tmp_path: Path) -> None:
    """SIGKILL kill_saver.py 0.05-0.4 s after it has opened the project (lock taken), then
    check the folder independently and reopen it as the next writer would, 50 times."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    trials = verified = orphan_kills = 0
    start = time.monotonic()
    for trial in range(KILL_TRIALS):
        # a fresh project every 10 kills bounds the re-verification work on fast disks
        root = tmp_path / f"killed{trial // 10}"
        root.mkdir(exist_ok=True)
        child = subprocess.Popen(
            [sys.executable, str(KILL_SAVER), str(root), "6"],
            env=CHILD_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for_writer(root, child)
            time.sleep(rng.uniform(0.05, 0.4))
            assert child.poll() is None, child.stderr.read().decode()
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stderr.close()
        trials += 1
        verified += _check_after_kill(root)
        with ProjectStore.open(root) as store:  # the next writer: recovers and sweeps orphans
            orphan_kills += bool(store.orphans_removed)
            assert store.verify() == []
            for record in store.list_images():
                if record.latest_version is not None:
                    assert store.latest_annotation(record.rel_path).version == record.latest_version
    final = 0
    for root in tmp_path.glob("killed*"):
        with ProjectStore.open(root, read_only=True) as store:
            final += sum(len(store.history(r.rel_path)) for r in store.list_images())
    print(
        f"\nkill test (seed {seed}): {trials} SIGKILLs, {verified} annotation rows verified "
        f"({final} annotations at the end), {orphan_kills} kills left orphan files, 0 failures, "
        f"{time.monotonic() - start:.1f} s"
    )
    assert trials == KILL_TRIALS and final > KILL_TRIALS
