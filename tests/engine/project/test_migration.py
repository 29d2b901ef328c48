"""Projects of other releases: the committed schema-1 project (written by that release,
fixtures/release_1) upgrades with every mask, version and model reference intact after a
backup; a project of a newer schema is only ever read."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from engine.project import SCHEMA_VERSION, NewerProjectError, ProjectStore, check_project
from tests.engine.project.fixtures.make_release_fixture import TARGET as RELEASE_1
from tests.engine.project.fixtures.make_release_fixture import lungs
from tests.engine.project.store_helpers import tree_digest


@pytest.fixture
def old_project(tmp_path: Path) -> Path:
    """A copy of the committed release-1 project (the committed bytes stay as they are)."""
    return Path(shutil.copytree(RELEASE_1, tmp_path / "release_1"))


def schema_of(path: Path, immutable: bool = False) -> int:
    """``immutable``: read without creating ``-wal``/``-shm`` beside the file (the committed
    fixture must stay exactly as the old release wrote it); else see a live writer's WAL."""
    conn = sqlite3.connect(f"file:{path}?mode=ro{'&immutable=1' if immutable else ''}", uri=True)
    try:
        return conn.execute("SELECT version FROM schema_version").fetchone()[0]
    finally:
        conn.close()


def test_the_fixture_is_a_schema_1_project() -> None:
    before = tree_digest(RELEASE_1)
    assert schema_of(RELEASE_1 / ".lungsam" / "project.db", immutable=True) == 1 < SCHEMA_VERSION
    assert tree_digest(RELEASE_1) == before


def test_a_release_1_project_upgrades_with_everything_intact(old_project: Path, tmp_path: Path) -> None:
    shutil.copy(old_project / ".lungsam" / "project.db", tmp_path / "as-committed.db")
    with ProjectStore.open(old_project) as store:
        backup = store.backup
        assert backup is not None and backup.parent.name == "backups"
        assert schema_of(old_project / ".lungsam" / "project.db") == SCHEMA_VERSION
        images = {r.rel_path: (r.status, r.latest_version) for r in store.list_images()}
        assert images == {"a.png": ("corrected", 2), "b.png": ("model", 1), "sub/c.png": ("skipped", None)}
        history = store.history("a.png")
        assert [(a.version, a.kind, a.model_name, a.model_hash) for a in history] == [
            (1, "model", "tiny-default", "abc123"), (2, "corrected", "tiny-default", "abc123")]
        assert history[0].prompts == {"labels": {"lungs": {"box": [1, 2, 30, 20]}}}
        for version, shift in ((1, 0), (2, 1)):
            masks = store.load_annotation("a.png", version).masks
            expected = lungs((24, 32), shift)
            assert set(masks) == set(expected)
            for label, mask in expected.items():
                assert np.array_equal(masks[label], mask)
        assert np.array_equal(store.latest_annotation("b.png").masks["lungs"], lungs((24, 32), 2)["lungs"])
        # the upgrade ties existing masks to the image content present at the upgrade
        sha_a = hashlib.sha256((old_project / "a.png").read_bytes()).hexdigest()
        assert {a.image_sha256 for a in store.history("a.png")} == {sha_a}
        [model] = store.list_model_versions()
        assert (model["name"], model["active"], model["provenance"], model["metrics"]) == (
            "ft-1", True, {"base": "tiny-default", "images": 2}, {"dice": 0.9})
        assert model["path"] == str(old_project / ".lungsam" / "models" / "ft-1")
        assert store.verify() == []
    # the backup is the schema-1 database as it was: same rows, still schema 1
    assert schema_of(backup) == 1
    conn = sqlite3.connect(backup)
    old = sqlite3.connect(tmp_path / "as-committed.db")
    for table in ("images", "annotations", "annotation_masks", "model_versions"):
        assert conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() == \
            old.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    conn.close()
    assert check_project(old_project) == []
    with ProjectStore.open(old_project) as store:  # a second open: no second backup
        assert store.backup is None
    print(f"\nrelease-1 project: schema 1 -> {SCHEMA_VERSION} after a backup ({backup.name}); 3 images, "
          "3 versions, 7 masks bit-identical, prompts, model name/hash, 1 model version (active, "
          "path, provenance, metrics) intact; check: healthy")


@pytest.fixture
def newer_project(old_project: Path) -> Path:
    """The release-1 project as a future LungSAM might leave it: schema 99, an extra column."""
    with ProjectStore.open(old_project):
        pass
    conn = sqlite3.connect(old_project / ".lungsam" / "project.db")
    conn.execute("UPDATE schema_version SET version = 99")
    conn.execute("ALTER TABLE annotations ADD COLUMN future TEXT")
    conn.commit()
    conn.close()
    return old_project


def test_a_newer_project_is_read_never_upgraded_or_changed(newer_project: Path) -> None:
    before = tree_digest(newer_project)
    with pytest.raises(NewerProjectError, match="newer LungSAM \\(schema 99") as caught:
        ProjectStore.open(newer_project)
    assert caught.value.version == 99
    with ProjectStore.open_copy(newer_project, caught.value.reason) as view:
        assert view.read_only and "never upgraded" in view.read_only_reason
        assert view.latest_annotation("a.png").version == 2
        assert np.array_equal(view.latest_annotation("a.png").masks["lungs"], lungs((24, 32), 1)["lungs"])
        assert view.list_model_versions()[0]["name"] == "ft-1"
    with ProjectStore.open(newer_project, read_only=True) as shared:
        assert "newer LungSAM (schema 99;" in shared.read_only_reason
        assert shared.latest_annotation("b.png").version == 1
    problems = check_project(newer_project)
    assert len(problems) == 1 and "newer LungSAM (schema 99" in problems[0].message
    assert tree_digest(newer_project) == before
    assert schema_of(newer_project / ".lungsam" / "project.db") == 99
    print(f"\nschema-99 project: open for writing refused, read through a copy and beside a writer, "
          f"masks shown, {len(before)} files and folders byte-identical, still schema 99")
