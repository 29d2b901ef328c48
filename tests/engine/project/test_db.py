"""engine.project.db: JSON columns, write transactions that roll back, reads, and paths.

What a failed save must look like to the window: one ProjectStoreError naming the database,
nothing half-written, and a connection that keeps working for the next save.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.project import ImageNotInProjectError, ProjectStore, ProjectStoreError
from engine.project.db import to_json
from tests.engine.project.fixtures.make_release_fixture import TARGET as RELEASE_1
from tests.engine.project.store_helpers import tree_digest


def test_json_columns_take_numpy_values_and_paths_in_a_stable_key_order() -> None:
    text = to_json({"b": np.arange(3), "a": np.float32(0.5), "c": Path("x") / "y.png"}, "the prompts")
    assert text == '{"a": 0.5, "b": [0, 1, 2], "c": "x/y.png"}'  # sorted: equal values, equal text
    assert json.loads(to_json({"n": np.int64(7)}, "x")) == {"n": 7}


def test_a_value_json_cannot_hold_is_a_store_error_naming_what(tmp_path: Path) -> None:
    with pytest.raises(ProjectStoreError, match=r"the prompts cannot be stored as JSON \(object\)"):
        to_json({"box": object()}, "the prompts")
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(ProjectStoreError, match="metrics cannot be stored as JSON.*[Cc]ircular"):
        to_json(loop, "metrics")


def test_a_failed_write_rolls_back_names_the_database_and_the_next_write_works(store: ProjectStore) -> None:
    with pytest.raises(ProjectStoreError, match=r"\.lungsam/project\.db: could not save"):
        with store._transaction() as conn:
            conn.execute("UPDATE images SET status = 'skipped' WHERE rel_path = 'a.png'")
            conn.execute("INSERT INTO no_such_table VALUES (1)")
    assert not store._conn.in_transaction
    assert {r.rel_path: r.status for r in store.list_images()}["a.png"] == "new"  # rolled back
    with pytest.raises(KeyError):  # any other error: rolled back too, and passed on unchanged
        with store._transaction() as conn:
            conn.execute("UPDATE images SET status = 'skipped' WHERE rel_path = 'b.png'")
            raise KeyError("stop")
    assert {r.rel_path: r.status for r in store.list_images()}["b.png"] == "new"
    store.set_status("a.png", "skipped")
    assert {r.rel_path: r.status for r in store.list_images()}["a.png"] == "skipped"


def test_a_failed_read_is_a_store_error_naming_the_database(store: ProjectStore) -> None:
    with pytest.raises(ProjectStoreError, match=r"\.lungsam/project\.db: could not read"):
        store._query("SELECT nothing FROM no_such_table")
    assert len(store._query("SELECT id FROM images")) == 3


def test_status_of_a_registered_an_unregistered_and_a_missing_image(store: ProjectStore) -> None:
    store.set_status("b.png", "skipped")
    (store.root / "late.png").write_bytes(b"x")  # on disk, not registered yet: registered now
    store.set_status("late.png", "corrected")
    statuses = {r.rel_path: r.status for r in store.list_images()}
    assert statuses["b.png"] == "skipped" and statuses["late.png"] == "corrected"
    ids = {r.rel_path: r.id for r in store.list_images()}
    assert len(set(ids.values())) == 4
    with pytest.raises(ImageNotInProjectError, match="no such file exists"):
        store.set_status("ghost.png", "skipped")


def test_a_fresh_writer_and_a_viewer_start_with_nothing_to_report(folder: Path) -> None:
    with ProjectStore.open(folder) as store:
        assert (store.orphans_removed, store.read_only_reason, store.backup) == (0, None, None)
        assert not (folder / ".lungsam" / "backups").exists()  # a new project has nothing to back up
        with ProjectStore.open(folder, read_only=True) as viewer:
            assert viewer.orphans_removed == 0 and viewer.backup is None


def test_an_image_that_is_a_link_to_elsewhere_keeps_its_name_in_the_folder(tmp_path: Path) -> None:
    """Data sets are often folders of symbolic links; the link is the image's place."""
    elsewhere = tmp_path / "archive" / "film.png"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"x")
    root = tmp_path / "project"
    root.mkdir()
    os.symlink(elsewhere, root / "film.png")
    with ProjectStore.open(root) as store:
        assert store.register_images([root / "film.png"]) == 1
        assert [r.rel_path for r in store.list_images()] == ["film.png"]
        with pytest.raises(ImageNotInProjectError, match="not inside the project folder"):
            store.register_images([elsewhere])


def test_a_folder_reached_through_a_link_takes_paths_of_either_spelling(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "sub" / "a.png").write_bytes(b"x")
    os.symlink(real, tmp_path / "alias")
    with ProjectStore.open(tmp_path / "alias") as store:
        assert store.register_images([tmp_path / "alias" / "sub" / "a.png"]) == 1
        assert store.register_images([real / "sub" / "a.png"]) == 0  # the same image
        for bad in (".", "..", "sub/../../x.png"):
            with pytest.raises(ImageNotInProjectError, match="not an image path inside"):
                store.register_images([bad])


def test_a_read_only_copy_of_an_older_project_writes_nothing_into_its_folder(tmp_path: Path) -> None:
    old = Path(shutil.copytree(RELEASE_1, tmp_path / "release_1"))
    before = tree_digest(old)
    with ProjectStore.open_copy(old, "shown read-only") as view:
        assert view.read_only and view.backup is None
        assert {r.rel_path for r in view.list_images()} == {"a.png", "b.png", "sub/c.png"}
    assert tree_digest(old) == before
