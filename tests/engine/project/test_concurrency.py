"""engine.project: locking, concurrent readers and writers, and kill safety of annotations."""

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

import pytest
from PIL import Image

from engine.project import (
    ProjectLockedError,
    ProjectStore,
    ProjectStoreError,
    ReadOnlyProjectError,
)
from tests.engine.project.store_helpers import CHILD_ENV, KILL_SAVER, REPO, lung_masks


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
        except BaseException as exc:
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
