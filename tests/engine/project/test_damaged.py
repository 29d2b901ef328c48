"""Damaged projects: diagnosed without changing a byte, opened read-only through a copy,
reported per image, and rebuilt from the mask files only on request."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from engine.project import (
    DamagedProjectError,
    ProjectStore,
    UnwritableProjectError,
    check_project,
    repair_project,
)
from engine.project.health import CORRUPT
from tests.engine.project.store_helpers import (
    image_bytes,
    lung_masks,
    read_only_view,
    tree_digest,
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Two annotated images (a: 2 versions, b: 1), one plain, one model version."""
    root = tmp_path / "cxr"
    (root / "sub").mkdir(parents=True)
    for i, name in enumerate(("a.png", "b.png", "sub/c.png")):
        (root / name).write_bytes(image_bytes(i))
    with ProjectStore.open(root) as store:
        store.register_images(["a.png", "b.png", "sub/c.png"])
        store.save_annotation("a.png", lung_masks(), "model", model_name="m", model_hash="h1",
                              prompts={"labels": {"lungs": {"box": [1, 2, 30, 40]}}})
        store.save_annotation("a.png", lung_masks(shift=2), "corrected", model_name="m")
        store.save_annotation("b.png", {"lungs": lung_masks(shift=-3)["lungs"]}, "model")
        (store.dir / "models" / "ft").mkdir(parents=True)
        (store.dir / "models" / "ft" / "model.json").write_text(
            '{"provenance": {"base": "m"}, "metrics": {"dice": 0.9}}')
        store.add_model_version("ft", store.dir / "models" / "ft", {"base": "m"}, {"dice": 0.9})
    return root


def db(root: Path) -> Path:
    return root / ".lungsam" / "project.db"


def truncate(root: Path) -> str:
    data = db(root).read_bytes()
    db(root).write_bytes(data[: len(data) // 3])
    return CORRUPT


def garbage(root: Path) -> str:
    db(root).write_bytes(os.urandom(8192))
    return CORRUPT


def foreign_sqlite(root: Path) -> str:
    db(root).unlink()
    conn = sqlite3.connect(db(root))
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.commit()
    conn.close()
    return "not a LungSAM project database"


def wrong_columns(root: Path) -> str:
    conn = sqlite3.connect(db(root))
    conn.execute("ALTER TABLE annotation_masks RENAME COLUMN sha256 TO digest")
    conn.commit()
    conn.close()
    return "missing annotation_masks.sha256"


def emptied(root: Path) -> str:
    db(root).write_bytes(b"")
    return "empty (0 bytes) but 7 mask files remain"


def deleted(root: Path) -> str:
    db(root).unlink()
    return "missing but 7 mask files remain"


DAMAGES = [truncate, garbage, foreign_sqlite, wrong_columns, emptied, deleted]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__)
def test_a_damaged_database_is_refused_reported_and_left_byte_identical(project, damage):
    expected = damage(project)
    before = tree_digest(project)
    with pytest.raises(DamagedProjectError, match="nothing in the folder was changed") as caught:
        ProjectStore.open(project)
    assert expected in str(caught.value) and expected in caught.value.reason
    problems = check_project(project)
    assert [p.subject for p in problems] == [".lungsam/project.db"]
    assert expected in problems[0].message and problems[0].repairable
    with ProjectStore.open_copy(project, caught.value.reason) as view:  # what the GUI shows
        assert view.read_only and view.list_images() == []
    assert tree_digest(project) == before  # not a byte added, removed or changed
    print(f"\n{damage.__name__}: open refused, check says '{problems[0].message[:60]}...', "
          f"{len(before)} files and folders byte-identical")


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__)
def test_repair_rebuilds_the_database_from_the_mask_files(project, damage):
    with ProjectStore.open(project, read_only=True) as store:
        expected = {rel: [(a.version, a.kind, a.model_name, a.model_hash, a.prompts, a.image_sha256,
                           {k: m.tobytes() for k, m in a.masks.items()})
                          for a in (store.load_annotation(rel, h.version) for h in store.history(rel))]
                    for rel in ("a.png", "b.png")}
    damage(project)
    damaged_bytes = db(project).read_bytes() if db(project).exists() else None
    report = repair_project(project)
    assert any("rebuilt the database" in line and "2 images, 3 annotation versions, 1 model" in line
               for line in report.done)
    assert check_project(project) == []
    with ProjectStore.open(project) as store:
        for rel, versions in expected.items():
            got = [(a.version, a.kind, a.model_name, a.model_hash, a.prompts, a.image_sha256,
                    {k: m.tobytes() for k, m in a.masks.items()})
                   for a in (store.load_annotation(rel, h.version) for h in store.history(rel))]
            assert got == versions
        assert [m["name"] for m in store.list_model_versions()] == ["ft"]
    if damaged_bytes is not None:  # the damaged database is kept, not deleted
        kept = list((project / ".lungsam" / "backups").glob("repair-*/damaged-project.db"))
        assert [p.read_bytes() for p in kept] == [damaged_bytes]
    print(f"\n{damage.__name__}: --repair rebuilt 2 images, 3 versions (7 masks, kinds, models, "
          "prompts, image sha256 equal), 1 model version; damaged database kept in backups/")


def test_check_names_each_damaged_mask_per_image_and_changes_nothing(project):
    masks = project / ".lungsam" / "masks"
    (masks / "1" / "v2_lungs.png").unlink()
    altered = masks / "2" / "v1_lungs.png"
    altered.write_bytes(altered.read_bytes() + b"\0")
    orphan = masks / "1" / "v9_lungs.png"
    orphan.write_bytes(b"left by a kill")
    before = tree_digest(project)
    lines = [str(p) for p in check_project(project)]
    assert lines == [
        "a.png: the 'lungs' mask of version 2 is missing (masks/1/v2_lungs.png)",
        "b.png: the 'lungs' mask of version 1 was changed outside LungSAM "
        "(masks/2/v1_lungs.png differs from its sha256)",
        "masks/1/v9_lungs.png: no annotation version refers to this mask file (left by an "
        "interrupted save); --repair moves it to .lungsam/backups/",
    ]
    assert tree_digest(project) == before
    with ProjectStore.open(project, read_only=True) as store:
        assert store.image_problems() == {
            "a.png": "a mask file of version 2 is missing (masks/1/v2_lungs.png)"}
    report = repair_project(project)
    assert report.done and "moved 1 orphaned mask files" in report.done[0]
    assert not orphan.exists()
    assert [p.read_bytes() for p in (project / ".lungsam" / "backups").rglob("v9_lungs.png")] == [
        b"left by a kill"]


def test_deleted_and_replaced_images_are_reported_and_their_masks_kept(project):
    (project / "a.png").unlink()
    (project / "b.png").write_bytes(image_bytes(99))
    assert [str(p) for p in check_project(project)] == [
        "a.png: the image file is missing (2 annotation versions are kept)",
        "b.png: the image file changed since its masks were saved (replaced?); its masks are "
        "not shown on the new image",
    ]
    with ProjectStore.open(project) as store:
        problems = store.image_problems()
        assert problems["a.png"].startswith("the image file is missing")
        assert store.latest_annotation("a.png").version == 2  # nothing lost
        b = store.latest_annotation("b.png")
        assert b.image_sha256 != hashlib.sha256(image_bytes(99)).hexdigest()


@pytest.fixture
def read_only_mount(project: Path, tmp_path: Path):
    """``project`` seen through a read-only bind mount (skipped where mounting is not allowed)."""
    with read_only_view(project, tmp_path / "ro") as view:
        yield view


def test_a_read_only_file_system_opens_read_only_with_its_masks(project, read_only_mount):
    before = tree_digest(project)
    with pytest.raises(UnwritableProjectError, match="read-only file system") as caught:
        ProjectStore.open(read_only_mount)
    with ProjectStore.open_copy(read_only_mount, caught.value.reason) as view:
        assert view.read_only and "read-only file system" in view.read_only_reason
        assert np.array_equal(view.latest_annotation("a.png").masks["lungs"],
                              lung_masks(shift=2)["lungs"])
    assert check_project(read_only_mount) == []
    assert tree_digest(project) == before


def test_a_folder_without_write_permission_opens_read_only(project):
    if os.geteuid() == 0:
        pytest.skip("root ignores permission bits (the read-only mount test covers root)")
    before = tree_digest(project)
    (project / ".lungsam").chmod(0o555)
    try:
        with pytest.raises(UnwritableProjectError, match="no write permission"):
            ProjectStore.open(project)
    finally:
        (project / ".lungsam").chmod(0o755)
    assert tree_digest(project) == before


def test_a_renamed_image_takes_its_masks_along(project):
    (project / "a.png").rename(project / "sub" / "a-renamed.png")
    shutil.copy(project / "b.png", project / "b-copy.png")  # same content, but b is still there
    with ProjectStore.open(project) as store:
        store.register_images(["sub/a-renamed.png", "b-copy.png"])
        assert store.relink_renamed() == [("a.png", "sub/a-renamed.png")]
        assert [a.version for a in store.history("sub/a-renamed.png")] == [1, 2]
        assert np.array_equal(store.latest_annotation("sub/a-renamed.png").masks["lungs"],
                              lung_masks(shift=2)["lungs"])
        assert store.history("b-copy.png") == []
        assert "a.png" not in {r.rel_path for r in store.list_images()}
        assert store.image_problems() == {}
    assert check_project(project) == []


class _FailingConnection:
    """A real connection whose statements containing ``fail_on`` raise a DatabaseError (as a
    database that SQLite cannot use at that point would); everything else goes through."""

    made: list[_FailingConnection] = []

    def __init__(self, conn: sqlite3.Connection, fail_on: str) -> None:
        self._conn, self._fail_on, self.closed = conn, fail_on, False
        _FailingConnection.made.append(self)

    def close(self) -> None:
        self.closed = True
        self._conn.close()

    def execute(self, sql: str, *args):
        if self._fail_on in sql:
            raise sqlite3.DatabaseError("file is not a database")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


@pytest.mark.parametrize("read_only, fail_on", [(False, "journal_mode"), (True, "query_only")])
def test_a_database_sqlite_cannot_use_after_the_checks_is_one_clear_error(
    project: Path, monkeypatch: pytest.MonkeyPatch, read_only: bool, fail_on: str
) -> None:
    from engine.project import ProjectStoreError
    from engine.project import store as store_module

    writer = ProjectStore.open(project) if read_only else None  # a viewer opens beside a writer
    _FailingConnection.made.clear()
    real_connect = sqlite3.connect
    monkeypatch.setattr(store_module.sqlite3, "connect",
                        lambda *a, **k: _FailingConnection(real_connect(*a, **k), fail_on))
    with pytest.raises(ProjectStoreError, match=r"project\.db: the project database is unusable \(file is not"):
        ProjectStore.open(project, read_only=read_only)
    assert _FailingConnection.made and all(c.closed for c in _FailingConnection.made)  # none leaked
    monkeypatch.undo()
    if writer is not None:
        writer.close()
    with ProjectStore.open(project) as again:  # the failed open let go of the lock
        assert len(again.list_images()) == 3
