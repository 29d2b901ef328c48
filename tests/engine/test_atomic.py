"""Durability order of every atomic writer: data fsynced, then renamed, then the folder fsynced.

A SIGKILL test cannot see this (the page cache survives a killed process, not a power cut), so
``os.fsync`` / ``os.replace`` / ``os.rename`` are recorded and their order checked: the new
file (every file of a new folder, and the new folder itself) is fsynced *before* the rename
that publishes it, and the folder holding it is fsynced *after* it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine import atomic
from engine.atomic import atomic_directory, atomic_write_bytes, atomic_write_with


class DiskLog:
    """What reached the disk, in order: ('fsync', path) and ('rename', src, dst)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple] = []
        real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

        def fsync(fd):
            self.calls.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}"))))
            return real_fsync(fd)

        def replace(src, dst, *a, **kw):
            self.calls.append(("rename", Path(src).absolute(), Path(dst).absolute()))
            return real_replace(src, dst, *a, **kw)

        def rename(src, dst, *a, **kw):
            self.calls.append(("rename", Path(src).absolute(), Path(dst).absolute()))
            return real_rename(src, dst, *a, **kw)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "rename", rename)

    def renames_to(self, dst: Path) -> list[int]:
        dst = Path(dst).absolute()
        return [i for i, c in enumerate(self.calls) if c[0] == "rename" and c[2] == dst]

    def fsynced(self, path: Path, start: int = 0, stop: int | None = None) -> bool:
        path = Path(path).absolute()
        return any(c == ("fsync", path) for c in self.calls[start:stop])

    def assert_durable_file(self, dst: Path) -> None:
        """The last rename onto ``dst``: its source fsynced before, ``dst``'s folder after."""
        renames = self.renames_to(dst)
        assert renames, f"{dst} was not written by a rename: {self.calls}"
        i = renames[-1]
        src = self.calls[i][1]
        assert src.parent == Path(dst).absolute().parent, "the temporary file lives beside its target"
        assert self.fsynced(src, 0, i), f"{src} renamed onto {dst} before it was fsynced: {self.calls}"
        assert self.fsynced(Path(dst).parent, i + 1), f"{Path(dst).parent} not fsynced after the rename"

    def assert_durable_folder(self, dst: Path, files: list[str]) -> None:
        """A folder swapped in whole: each of its files and the folder itself fsynced before
        the rename, the parent folder after."""
        renames = self.renames_to(dst)
        assert renames, f"{dst} was not published by a rename: {self.calls}"
        i = renames[-1]
        src = self.calls[i][1]
        for name in files:
            assert self.fsynced(src / name, 0, i), f"{name} not fsynced before {dst} was renamed in"
            for folder in Path(name).parents:
                assert self.fsynced(src / folder, 0, i), f"{src / folder} not fsynced before the rename"
        assert self.fsynced(src, 0, i), f"the new folder's entries ({src}) not fsynced before the rename"
        assert self.fsynced(Path(dst).parent, i + 1), f"{Path(dst).parent} not fsynced after the rename"


@pytest.fixture
def disk(monkeypatch) -> DiskLog:
    return DiskLog(monkeypatch)


def test_atomic_write_bytes_fsyncs_file_before_rename_and_folder_after(disk, tmp_path):
    target = tmp_path / "out" / "mask.png"
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    disk.assert_durable_file(target)
    atomic_write_bytes(target, b"newer")  # replacing an existing file: the same order
    assert target.read_bytes() == b"newer"
    disk.assert_durable_file(target)
    assert [p.name for p in target.parent.iterdir()] == ["mask.png"], "no temporary file left"


def test_atomic_write_with_fsyncs_what_the_writer_wrote(disk, tmp_path):
    target = tmp_path / "new" / "nested" / "ckpt.pt"  # missing folders are made
    atomic_write_with(target, lambda tmp: tmp.write_bytes(b"x" * 1000))
    disk.assert_durable_file(target)


def test_a_failing_writer_leaves_the_old_file_and_renames_nothing(disk, tmp_path):
    target = tmp_path / "keep.txt"
    target.write_bytes(b"old")

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write_with(target, broken)
    assert target.read_bytes() == b"old"
    assert not disk.renames_to(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_atomic_directory_fsyncs_files_and_folder_before_swap(disk, tmp_path):
    target = tmp_path / "best"
    for generation in ("first", "second"):
        with atomic_directory(target) as tmp:
            (tmp / "weights.safetensors").write_bytes(generation.encode())
            (tmp / "sub").mkdir()
            (tmp / "sub" / "model.json").write_text(generation)
        disk.assert_durable_folder(target, ["weights.safetensors", "sub/model.json"])
        assert (target / "sub" / "model.json").read_text() == generation
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"], "old and partial folders removed"


def test_a_writer_that_removed_its_file_fails_with_its_own_error(tmp_path):
    def gone(tmp: Path) -> None:
        tmp.unlink()
        raise ValueError("the writer's own error")

    with pytest.raises(ValueError, match="own error"):
        atomic_write_with(tmp_path / "x", gone)
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_are_the_ones_a_resumed_run_tidies(tmp_path):
    """A killed writer leaves ``.NAME.*.tmp``, ``.NAME.partial-XXXXXXXX`` or ``.NAME.old-XXXXXXXX``:
    the names ``trainer.training.run.recover_run_folder`` removes or restores."""
    from trainer.training.run import _TEMP_DIR, _TEMP_FILE

    seen = {}

    def writer(tmp: Path) -> None:
        seen["file"] = tmp.name
        tmp.write_bytes(b"x")

    atomic_write_with(tmp_path / "checkpoint.pt", writer)
    assert _TEMP_FILE.match(seen["file"])["name"] == "checkpoint.pt"
    (tmp_path / "best").mkdir()
    real_replace = os.replace

    def replace(src, dst):
        seen.setdefault("renames", []).append((Path(src).name, Path(dst).name))
        return real_replace(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", replace)
        with atomic_directory(tmp_path / "best") as tmp:
            partial = tmp.name
    assert _TEMP_DIR.match(partial).group("name", "kind") == ("best", "partial")
    (old,) = [dst for src, dst in seen["renames"] if src == "best"]
    assert _TEMP_DIR.match(old).group("name", "kind") == ("best", "old")


def _unremovable(monkeypatch, name: str) -> None:
    """``os.unlink`` refuses to remove files called ``name`` (a busy file on a network disk)."""
    real_unlink = os.unlink

    def unlink(path, *a, **kw):
        if Path(path).name == name:
            raise PermissionError(1, "Operation not permitted", str(path))
        return real_unlink(path, *a, **kw)

    monkeypatch.setattr(os, "unlink", unlink)


def test_an_old_folder_that_cannot_be_removed_does_not_undo_the_swap(tmp_path, monkeypatch):
    target = tmp_path / "new" / "nested" / "best"  # missing parents are made
    with atomic_directory(target) as tmp:
        (tmp / "busy.bin").write_text("old")
    _unremovable(monkeypatch, "busy.bin")
    with atomic_directory(target) as tmp:
        (tmp / "model.json").write_text("new")
    assert (target / "model.json").read_text() == "new"


def test_a_partial_folder_that_cannot_be_removed_keeps_the_bodys_error(tmp_path, monkeypatch):
    _unremovable(monkeypatch, "busy.bin")
    with pytest.raises(RuntimeError, match="cancelled"), atomic_directory(tmp_path / "best") as tmp:
        (tmp / "busy.bin").write_text("x")
        raise RuntimeError("cancelled")
    assert not (tmp_path / "best").exists()


def test_atomic_directory_failure_keeps_the_old_folder(disk, tmp_path):
    target = tmp_path / "best"
    target.mkdir()
    (target / "a").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a").write_text("new")
        raise RuntimeError("cancelled")
    assert (target / "a").read_text() == "old"
    assert not disk.renames_to(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_fsync_dir_syncs_the_directory_itself(disk, tmp_path):
    atomic.fsync_dir(tmp_path)
    assert disk.calls == [("fsync", tmp_path.absolute())]


# -- the writers built on them -------------------------------------------------------------


def test_project_mask_pngs_are_durable_before_the_row_that_names_them(disk, tmp_path, monkeypatch):
    from engine.project import ProjectStore
    from tests.engine.project.store_helpers import lung_masks

    root = tmp_path / "cxr"
    root.mkdir()
    (root / "a.png").write_bytes(b"x")
    with ProjectStore.open(root) as store:
        store.register_images(["a.png"])
        committed_at: list[int] = []
        real_transaction = type(store)._transaction

        def transaction(self):  # note where each SQLite transaction starts
            committed_at.append(len(disk.calls))
            return real_transaction(self)

        monkeypatch.setattr(type(store), "_transaction", transaction)
        for shift in (0, 2):  # a new image folder, then a second version into it
            store.save_annotation("a.png", lung_masks(shift=shift), "corrected")
        files = sorted(store.masks_dir.rglob("*.png"))
        assert len(files) == 6
        for png in files:
            disk.assert_durable_file(png)
            # the transaction that records the PNG starts after its rename and folder fsync
            i = disk.renames_to(png)[-1]
            assert any(start > i + 1 for start in committed_at), f"{png.name}: no transaction after it"
        image_folder = files[0].parent
        mkdir_sync = [i for i, c in enumerate(disk.calls) if c == ("fsync", store.masks_dir.absolute())]
        # the first save: its version transaction, the new folder made durable in masks/, then
        # the transaction that records the files (an fsync from opening the store is not enough)
        assert any(committed_at[0] <= i < committed_at[1] for i in mkdir_sync), (
            f"the new folder {image_folder.name} is made durable in {store.masks_dir}")
        for version in (1, 2):
            assert store.load_annotation("a.png", version=version) is not None


def test_model_folders_are_durable(disk, tmp_path, tiny_sam):
    from engine.models import save_sam_folder

    sam, config = tiny_sam
    out = save_sam_folder(tmp_path / "models" / "m", sam, config)
    disk.assert_durable_folder(out, ["weights.safetensors", "model.json"])


def test_int8_export_is_durable(disk, tmp_path, tiny_sam):
    from engine.models import export_int8

    sam, config = tiny_sam
    out = export_int8(sam, config, tmp_path / "int8")
    disk.assert_durable_folder(out, ["weights.safetensors", "model.json"])


def test_training_checkpoint_and_best_model_are_durable(disk, tmp_path):
    import torch

    from engine.sam import build_sam
    from tests.sam_factory import tiny_config
    from tests.train_factory import synthetic_set
    from trainer.training import BaseStageConfig, EventWriter, LoopConfig, Trainer, base_stage

    config = tiny_config(img_size=64)
    torch.manual_seed(0)
    model = build_sam(config)
    data = synthetic_set(config.img_size, 2)
    groups, hooks = base_stage(model, config, BaseStageConfig(), {"test": True})
    loop = LoopConfig(epochs=1, batch_size=2, augment=False, max_clicks=0, warmup_steps=1)
    trainer = Trainer(model, config, groups, data, data, tmp_path / "run", loop, EventWriter(None),
                      hooks, "cpu", progress=False)
    trainer.run()
    disk.assert_durable_file(tmp_path / "run" / "checkpoint.pt")
    disk.assert_durable_folder(tmp_path / "run" / "best", ["weights.safetensors", "model.json"])

