"""``lungsam project check --repair``: what can be put right in a damaged project, and how.

Why it exists: a project's database can be lost (deleted, truncated, overwritten) while its
mask files survive; each mask PNG carries its own metadata (image path, version, label, kind,
model, image sha256: :data:`engine.project.mask_png.META_KEY`), so the database can be
rebuilt from them. Nothing is deleted on the way: the damaged database, orphaned mask files
and masks that cannot be placed (written before the metadata existed) are moved under
``.lungsam/backups/``, where the user can still find them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.atomic import fsync_dir
from engine.project.errors import ProjectStoreError
from engine.project.health import inspect_database, mask_files
from engine.project.layout import (
    DB_FILE,
    LOCK_FILE,
    backups_dir,
    masks_dir,
    models_dir,
    project_dir,
)
from engine.project.lock import acquire_lock, release_lock
from engine.project.mask_png import decode_mask_png, label_slug, mask_png_meta
from engine.project.schema import create_tables


@dataclass
class RepairReport:
    """What the repair did, one line each (empty: nothing needed doing)."""

    done: list[str] = field(default_factory=list)


def repair_project(root: str | Path) -> RepairReport:
    """Rebuild a damaged database from the mask files (after moving it aside) and move
    orphaned mask files aside. Takes the writer's lock; a newer project is refused."""
    root = Path(root).expanduser().absolute()
    report = RepairReport()
    state = inspect_database(root)
    if state.kind == "newer":
        raise ProjectStoreError(f"{root}: written by a newer LungSAM (schema {state.version}); "
                                "repair it with that version")
    if state.kind == "absent":
        raise ProjectStoreError(f"{root}: there is no LungSAM project here")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    fd = acquire_lock(project_dir(root) / LOCK_FILE, root)
    try:
        if state.kind == "damaged":
            moved = _move_database_aside(root, stamp)
            if moved:
                report.done.append(f"moved the damaged database to {moved[0]}")
            report.done.extend(_rebuild(root, stamp))
        report.done.extend(_move_orphans(root, stamp))
    finally:
        release_lock(fd)
    return report


def _aside(root: Path, stamp: str, name: str) -> Path:
    folder = backups_dir(root) / f"repair-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _move_database_aside(root: Path, stamp: str) -> list[Path]:
    moved = []
    for suffix in ("", "-wal", "-shm"):
        source = project_dir(root) / (DB_FILE + suffix)
        if source.exists():
            target = _aside(root, stamp, f"damaged-{DB_FILE}{suffix}")
            os.replace(source, target)
            moved.append(target)
    fsync_dir(project_dir(root))
    return moved


def _move_mask_aside(root: Path, stamp: str, folder: str, file: str) -> None:
    target = _aside(root, stamp, f"{folder}/{file}")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(masks_dir(root) / file, target)


@dataclass
class _Version:
    meta: dict
    masks: dict[str, tuple[str, str, int, int]] = field(default_factory=dict)


def _backup_metadata(root: Path) -> dict[str, dict]:
    """Mask file -> metadata as the backed-up databases (``backups/*.bak``, newest last, so
    newest wins) record it: how masks written before the PNG metadata existed are placed."""
    found: dict[str, dict] = {}
    folder = backups_dir(root)
    for backup in sorted(folder.glob("project.db.*.bak"), key=lambda p: p.stat().st_mtime):
        try:
            conn = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
            try:
                rows = conn.execute(
                    "SELECT m.file, m.label, i.id, i.rel_path, a.version, a.kind, a.model_name,"
                    " a.model_hash, a.created, a.prompts_json FROM annotation_masks m JOIN"
                    " annotations a ON a.id = m.annotation_id JOIN images i ON i.id = a.image_id"
                ).fetchall()
            finally:
                conn.close()
        except sqlite3.Error:
            continue
        for file, label, image_id, rel, version, kind, name, model_hash, created, prompts in rows:
            found[file] = {"label": label, "image_id": image_id, "rel_path": rel,
                           "version": version, "kind": kind, "model_name": name,
                           "model_hash": model_hash, "created": created,
                           "prompts": json.loads(prompts or "{}")}
    return found


def _read_masks(root: Path) -> tuple[dict[tuple[int, int], _Version], list[str]]:
    """Mask files grouped by (image id, version) from their metadata (else from a backed-up
    database); files with neither (or whose name disagrees) are returned apart."""
    versions: dict[tuple[int, int], _Version] = {}
    unplaced = []
    backups = _backup_metadata(root)
    for file in mask_files(root):
        try:
            data = (masks_dir(root) / file).read_bytes()
            meta = mask_png_meta(data) or backups[file]
            image_id, version, label = int(meta["image_id"]), int(meta["version"]), meta["label"]
            expected = f"{image_id}/v{version}_{label_slug(label)}.png"
            height, width = decode_mask_png(data).shape
            rel, kind = str(meta["rel_path"]), str(meta["kind"])
        except Exception:  # no metadata anywhere, unreadable, or inconsistent
            unplaced.append(file)
            continue
        if expected != file or kind not in ("model", "corrected") or not rel:
            unplaced.append(file)
            continue
        entry = versions.setdefault((image_id, version), _Version(meta))
        entry.masks[label] = (file, hashlib.sha256(data).hexdigest(), width, height)
    return versions, unplaced


def _rebuild(root: Path, stamp: str) -> list[str]:
    versions, unplaced = _read_masks(root)
    paths: dict[int, str] = {}
    for (image_id, _v), entry in sorted(versions.items()):
        paths.setdefault(image_id, entry.meta["rel_path"])
    taken: dict[str, int] = {}
    for image_id, rel in sorted(paths.items()):
        if rel in taken:  # two folders claim one image: keep the first, set the other aside
            unplaced += [f for (i, _v), e in versions.items() if i == image_id
                         for f, *_ in e.masks.values()]
            continue
        taken[rel] = image_id
    tmp = project_dir(root) / f".{DB_FILE}.rebuild"
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        with conn:
            create_tables(conn)
            for rel, image_id in taken.items():
                mine = sorted((v, e) for (i, v), e in versions.items() if i == image_id)
                top = mine[-1][1].meta
                width, height = next(iter(mine[-1][1].masks.values()))[2:]
                conn.execute(
                    "INSERT INTO images (id, rel_path, status, updated, width, height,"
                    " file_sha256, file_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (image_id, rel, top["kind"], top.get("created"), width, height,
                     top.get("image_sha256"), top.get("image_size")),
                )
                for version, entry in mine:
                    m = entry.meta
                    ann = conn.execute(
                        "INSERT INTO annotations (image_id, version, kind, model_name, model_hash,"
                        " created, prompts_json, image_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (image_id, version, m["kind"], m.get("model_name"), m.get("model_hash"),
                         float(m.get("created") or 0.0), json.dumps(m.get("prompts") or {}),
                         m.get("image_sha256")),
                    ).lastrowid
                    conn.executemany(
                        "INSERT INTO annotation_masks (annotation_id, label, file, sha256, width,"
                        " height) VALUES (?, ?, ?, ?, ?, ?)",
                        [(ann, label, *row) for label, row in entry.masks.items()],
                    )
            models = _model_folders(root)
            for name, rel, provenance, metrics in models:
                conn.execute(
                    "INSERT INTO model_versions (name, path, created, provenance_json,"
                    " metrics_json) VALUES (?, ?, ?, ?, ?)",
                    (name, rel, time.time(), json.dumps(provenance), json.dumps(metrics)),
                )
    finally:
        conn.close()
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, project_dir(root) / DB_FILE)
    fsync_dir(project_dir(root))
    for file in unplaced:
        _move_mask_aside(root, stamp, "unplaced-masks", file)
    n_versions = sum(1 for (i, _v) in versions if i in taken.values())
    done = [f"rebuilt the database from the mask files: {len(taken)} images, {n_versions} "
            f"annotation versions, {len(models)} model versions (none active; choose one in "
            "the Model menu)"]
    if unplaced:
        done.append(f"moved {len(unplaced)} mask files that could not be placed (no metadata and "
                    f"no backed-up database names them) to {_aside(root, stamp, 'unplaced-masks')}")
    return done


def _model_folders(root: Path) -> list[tuple[str, str, dict, dict]]:
    """(name, root-relative path, provenance, metrics) of each model folder in the project."""
    found = []
    base = models_dir(root)
    for folder in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            meta = json.loads((folder / "model.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            found.append((folder.name, folder.relative_to(root).as_posix(),
                          meta.get("provenance") or {}, meta.get("metrics") or {}))
    return found


def _move_orphans(root: Path, stamp: str) -> list[str]:
    """Mask files no row references, moved under backups/ (a healthy database only)."""
    db = project_dir(root) / DB_FILE
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        referenced = {row[0] for row in conn.execute("SELECT file FROM annotation_masks")}
    finally:
        conn.close()
    orphans = [f for f in mask_files(root) if f not in referenced]
    for file in orphans:
        _move_mask_aside(root, stamp, "orphaned-masks", file)
    if not orphans:
        return []
    return [f"moved {len(orphans)} orphaned mask files to "
            f"{_aside(root, stamp, 'orphaned-masks')}"]
