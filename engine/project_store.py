"""Annotation project store: one SQLite file and mask PNGs inside the image folder.

Layout under ``<root>/.lungsam/``: ``project.db`` (SQLite, WAL, ``synchronous=FULL``),
``masks/<image_id>/v<version>_<label>.png`` (0/255, original image size) and ``lock``.

Why it survives a kill at any instant: each mask PNG is written under a temporary name,
fsynced and renamed *before* the transaction that references it, and the row records the
PNG's sha256; so a committed row always points at a complete, unchanged file. A kill between
the rename and the commit only leaves unreferenced PNGs, removed by :meth:`vacuum_orphans`
when the next writer opens the folder. Versions are numbered 1, 2, 3... per image.

One writer per folder (``flock`` on ``.lungsam/lock``, holding pid and host); any number of
read-only windows, which read committed data while the writer saves (WAL + busy timeout).
All methods are thread-safe (one connection behind a lock), so GUI workers may call them.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.atomic import atomic_write_bytes, fsync_dir
from engine.labels import KINDS, LABELS, STATUSES
from engine.mask_png import clean_masks, decode_mask_png, encode_mask_png, label_slug
from engine.project_errors import (
    ImageNotInProjectError,
    MaskShapeError,
    ProjectLockedError,
    ProjectStoreError,
    ReadOnlyProjectError,
    UnknownLabelError,
)
from engine.project_lock import acquire_lock, release_lock

__all__ = [  # the public API, re-exported so callers import from one place
    "KINDS", "LABELS", "STATUSES", "Annotation", "ImageNotInProjectError", "ImageRecord",
    "MaskShapeError", "ProjectLockedError", "ProjectStore", "ProjectStoreError",
    "ReadOnlyProjectError", "UnknownLabelError", "decode_mask_png", "encode_mask_png", "label_slug",
]

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE images (
        id INTEGER PRIMARY KEY, rel_path TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL DEFAULT 'new'
            CHECK (status IN ('new', 'model', 'corrected', 'skipped')),
        updated REAL, width INTEGER, height INTEGER)""",
    """CREATE TABLE annotations (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        version INTEGER NOT NULL CHECK (version >= 1),
        kind TEXT NOT NULL CHECK (kind IN ('model', 'corrected')),
        model_name TEXT, model_hash TEXT, created REAL NOT NULL,
        prompts_json TEXT NOT NULL DEFAULT '{}', UNIQUE (image_id, version))""",
    """CREATE TABLE annotation_masks (
        annotation_id INTEGER NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
        label TEXT NOT NULL, file TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL,
        width INTEGER NOT NULL, height INTEGER NOT NULL, PRIMARY KEY (annotation_id, label))""",
    """CREATE TABLE model_versions (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
        created REAL NOT NULL, provenance_json TEXT NOT NULL, metrics_json TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 0)""",
)

MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}
"""Migration hook: ``MIGRATIONS[v]`` upgrades schema ``v`` to ``v + 1`` inside the writer's
open transaction. Bump :data:`SCHEMA_VERSION` together with adding a step."""


@dataclass(frozen=True)
class ImageRecord:
    id: int
    rel_path: str
    status: str
    updated: float | None
    latest_version: int | None


@dataclass(frozen=True, eq=False)
class Annotation:
    """One saved version; ``masks``: label -> bool HxW at the image's original size."""

    image_rel_path: str
    version: int
    kind: str
    model_name: str | None
    model_hash: str | None
    created: float
    prompts: dict
    masks: dict[str, np.ndarray] = field(default_factory=dict)


def _json(value: object, what: str) -> str:
    def default(obj: object) -> object:
        if isinstance(obj, np.ndarray | np.generic):
            return obj.tolist()
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(type(obj).__name__)

    try:
        return json.dumps(value, default=default, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ProjectStoreError(f"{what} cannot be stored as JSON ({exc})") from exc


class ProjectStore:
    """The annotation database of one image folder. Use :meth:`open`, not the constructor."""

    DIRNAME = ".lungsam"

    def __init__(self, root: Path, read_only: bool, conn: sqlite3.Connection, lock_fd: int | None):
        self.root, self.read_only = root, read_only
        self.dir = root / self.DIRNAME
        self.masks_dir = self.dir / "masks"
        self._real_root = root.resolve()
        self._conn, self._lock_fd = conn, lock_fd
        self._mutex = threading.RLock()
        self.orphans_removed = 0
        """Mask files of unfinished saves swept when this writer opened the folder."""

    # ------------------------------------------------------------------ open / close

    @classmethod
    def open(cls, root: str | Path, read_only: bool = False) -> ProjectStore:
        """Open (creating if needed) the project of image folder ``root``.

        Raises :class:`ProjectLockedError` when another window writes to it; the caller may
        then retry with ``read_only=True``. Read-only needs an existing project.
        """
        root = Path(root).expanduser().absolute()
        if not root.is_dir():
            raise ProjectStoreError(f"{root}: the image folder does not exist")
        db_path = root / cls.DIRNAME / "project.db"
        lock_fd = None
        if read_only:
            if not db_path.is_file():
                raise ProjectStoreError(
                    f"{root}: there is no LungSAM project here yet; open it for writing once"
                )
        else:
            try:
                (root / cls.DIRNAME / "masks").mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ProjectStoreError(
                    f"{root}: cannot create {cls.DIRNAME} ({exc.strerror}); "
                    "the folder may be read-only: open the project read-only"
                ) from exc
            lock_fd = acquire_lock(root / cls.DIRNAME / "lock", root)
        conn = None
        try:
            conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not read_only:
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            store = cls(root, read_only, conn, lock_fd)
            store._prepare_schema()
            if read_only:
                conn.execute("PRAGMA query_only = ON")
            else:
                store.orphans_removed = store.vacuum_orphans()
            return store
        except BaseException as exc:
            if conn is not None:
                conn.close()
            release_lock(lock_fd)
            if isinstance(exc, sqlite3.DatabaseError):
                raise ProjectStoreError(
                    f"{db_path}: the project database is unusable ({exc})"
                ) from exc
            raise

    def _prepare_schema(self) -> None:
        conn = self._conn
        row = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone()
        if row is None and self.read_only:
            raise ProjectStoreError(f"{self.root}: the project is not initialised yet")
        version = conn.execute("SELECT version FROM schema_version").fetchone()[0] if row else 0
        if version > SCHEMA_VERSION:
            raise ProjectStoreError(
                f"{self.root}: the project was made by a newer LungSAM (schema {version}); update"
            )
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            raise ProjectStoreError(f"{self.root}: open the project for writing once to upgrade it")
        with self._transaction() as conn:
            if version == 0:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                conn.execute("INSERT INTO meta VALUES ('created', ?)", (repr(time.time()),))
                return
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](conn)
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]
            if self._lock_fd is not None:
                os.ftruncate(self._lock_fd, 0)
                release_lock(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> ProjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ images

    def register_images(self, paths: Iterable[Path | str]) -> int:
        """Add images (absolute or relative to root); returns how many were new. Idempotent."""
        rels = sorted({self._rel(p) for p in paths})
        with self._transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO images (rel_path) VALUES (?)", [(r,) for r in rels]
            )
            return conn.total_changes - before

    def list_images(self) -> list[ImageRecord]:
        rows = self._query(
            "SELECT i.id, i.rel_path, i.status, i.updated, (SELECT MAX(version) FROM annotations"
            " WHERE image_id = i.id) FROM images i ORDER BY i.rel_path"
        )
        return [ImageRecord(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(self._query("SELECT status, COUNT(*) FROM images GROUP BY status"))
        counts["total"] = sum(counts[s] for s in STATUSES)
        return counts

    def set_status(self, rel_path: str, status: str) -> None:
        if status not in STATUSES:
            raise ProjectStoreError(
                f"unknown status {status!r}; expected one of {', '.join(STATUSES)}"
            )
        with self._transaction() as conn:
            image_id = self._image_id(conn, self._rel(rel_path), create=True)
            conn.execute(
                "UPDATE images SET status = ?, updated = ? WHERE id = ?",
                (status, time.time(), image_id),
            )

    # ------------------------------------------------------------------ annotations

    def save_annotation(
        self,
        rel_path: str,
        masks: dict[str, np.ndarray],
        kind: str,
        model_name: str | None = None,
        model_hash: str | None = None,
        prompts: dict | None = None,
    ) -> int:
        """Store a new version (files first, then one transaction); status becomes ``kind``.

        An image not yet registered is added if its file exists under root. Non-zero mask
        pixels are foreground. Returns the new version number.
        """
        self._check_writable()
        if kind not in KINDS:
            raise ProjectStoreError(
                f"unknown annotation kind {kind!r}; expected 'model' or 'corrected'"
            )
        rel = self._rel(rel_path)
        clean = clean_masks(rel, masks)
        height, width = next(iter(clean.values())).shape
        prompts_json = _json(prompts or {}, f"{rel}: the prompts")
        with self._mutex:
            with self._transaction() as conn:
                image_id = self._image_id(conn, rel, create=True)
                old_w, old_h = conn.execute(
                    "SELECT width, height FROM images WHERE id = ?", (image_id,)
                ).fetchone()
                if old_w is not None and (old_w, old_h) != (width, height):
                    raise MaskShapeError(
                        f"{rel}: the mask is {width} x {height} pixels but earlier annotations of "
                        f"this image are {old_w} x {old_h}; masks must be at the image's original size"
                    )
                version = (
                    1
                    + conn.execute(
                        "SELECT COALESCE(MAX(version), 0) FROM annotations WHERE image_id = ?",
                        (image_id,),
                    ).fetchone()[0]
                )
            rows = []
            folder = self.masks_dir / str(image_id)
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                fsync_dir(self.masks_dir)
            for label, mask in clean.items():
                data = encode_mask_png(mask)
                name = f"{image_id}/v{version}_{label_slug(label)}.png"
                atomic_write_bytes(self.masks_dir / name, data)
                rows.append((label, name, hashlib.sha256(data).hexdigest(), width, height))
            now = time.time()
            with self._transaction() as conn:
                cursor = conn.execute(
                    "INSERT INTO annotations (image_id, version, kind, model_name, model_hash, created,"
                    " prompts_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (image_id, version, kind, model_name, model_hash, now, prompts_json),
                )
                conn.executemany(
                    "INSERT INTO annotation_masks (annotation_id, label, file, sha256, width, height)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(cursor.lastrowid, *row) for row in rows],
                )
                conn.execute(
                    "UPDATE images SET status = ?, updated = ?, width = ?, height = ? WHERE id = ?",
                    (kind, now, width, height, image_id),
                )
            return version

    _ANN_SQL = (
        "SELECT a.id, i.rel_path, a.version, a.kind, a.model_name, a.model_hash, a.created,"
        " a.prompts_json FROM annotations a JOIN images i ON i.id = a.image_id "
    )

    def latest_annotation(self, rel_path: str, kind: str | None = None) -> Annotation | None:
        """Newest version (of ``kind`` if given) with masks; None when there is none."""
        where, args = "WHERE i.rel_path = ?", [self._rel(rel_path)]
        if kind is not None:
            where, args = where + " AND a.kind = ?", [*args, kind]
        rows = self._query(self._ANN_SQL + where + " ORDER BY a.version DESC LIMIT 1", args)
        return self._annotation(rows[0], with_masks=True) if rows else None

    def history(self, rel_path: str, with_masks: bool = False) -> list[Annotation]:
        """All versions, oldest first; masks are {} unless ``with_masks`` (see load_annotation)."""
        rows = self._query(
            self._ANN_SQL + "WHERE i.rel_path = ? ORDER BY a.version", [self._rel(rel_path)]
        )
        return [self._annotation(row, with_masks) for row in rows]

    def load_annotation(self, rel_path: str, version: int) -> Annotation:
        rel = self._rel(rel_path)
        rows = self._query(self._ANN_SQL + "WHERE i.rel_path = ? AND a.version = ?", [rel, version])
        if not rows:
            raise ImageNotInProjectError(f"{rel}: the project has no annotation version {version}")
        return self._annotation(rows[0], with_masks=True)

    def latest_annotations(
        self, kind: str | None = None
    ) -> Iterator[tuple[ImageRecord, Annotation]]:
        """(image, newest annotation of ``kind`` or any kind) per annotated image, by rel_path;
        masks are loaded one image at a time (exports of large projects stay small in memory)."""
        for record in self.list_images():
            annotation = self.latest_annotation(record.rel_path, kind)
            if annotation is not None:
                yield record, annotation

    def corrected_items(self) -> list[tuple[Path, dict[str, Path]]]:
        """(image path, label -> mask PNG path) of each image's newest CORRECTED version, the
        trainer's fine-tuning set. Images marked ``skipped`` are left out."""
        rows = self._query(
            "SELECT i.rel_path, m.label, m.file FROM images i JOIN annotations a ON a.image_id = i.id"
            " JOIN annotation_masks m ON m.annotation_id = a.id WHERE i.status != 'skipped'"
            " AND a.version = (SELECT MAX(version) FROM annotations WHERE image_id = i.id"
            " AND kind = 'corrected') ORDER BY i.rel_path, m.label"
        )
        items: dict[str, dict[str, Path]] = {}
        for rel, label, file in rows:
            items.setdefault(rel, {})[label] = self.masks_dir / file
        return [(self.root / rel, masks) for rel, masks in items.items()]

    # ------------------------------------------------------------------ models

    def add_model_version(
        self, name: str, path: Path | str, provenance: dict, metrics: dict
    ) -> int:
        """Record a trained model (same name again: updated in place, keeps id and active flag)."""
        path = Path(path).expanduser().absolute()
        try:
            stored = path.relative_to(self.root).as_posix()  # survives moving the project folder
        except ValueError:
            stored = str(path)
        with self._transaction() as conn:
            return conn.execute(
                "INSERT INTO model_versions (name, path, created, provenance_json, metrics_json)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET path = excluded.path,"
                " created = excluded.created, provenance_json = excluded.provenance_json,"
                " metrics_json = excluded.metrics_json RETURNING id",
                (
                    name,
                    stored,
                    time.time(),
                    _json(provenance, "provenance"),
                    _json(metrics, "metrics"),
                ),
            ).fetchone()[0]

    def list_model_versions(self) -> list[dict]:
        """Oldest first: id, name, path (absolute str), created, provenance, metrics, active."""
        rows = self._query(
            "SELECT id, name, path, created, provenance_json, metrics_json, active FROM model_versions ORDER BY id"
        )
        return [
            {
                "id": i,
                "name": n,
                "path": str(self.root / p),
                "created": c,
                "provenance": json.loads(pj),
                "metrics": json.loads(mj),
                "active": bool(a),
            }
            for i, n, p, c, pj, mj, a in rows
        ]

    def set_active_model(self, name: str) -> None:
        with self._transaction() as conn:
            if (
                conn.execute("SELECT 1 FROM model_versions WHERE name = ?", (name,)).fetchone()
                is None
            ):
                raise ProjectStoreError(
                    f"{self.root}: no model version named {name!r} in this project"
                )
            conn.execute("UPDATE model_versions SET active = (name = ?)", (name,))

    def active_model(self) -> dict | None:
        return next((m for m in self.list_model_versions() if m["active"]), None)

    # ------------------------------------------------------------------ maintenance

    def vacuum_orphans(self) -> int:
        """Delete mask files no row references (left by a kill before commit); returns count.
        Writer only: the lock guarantees no save is in flight in another process."""
        self._check_writable()
        with self._mutex:
            referenced = {row[0] for row in self._conn.execute("SELECT file FROM annotation_masks")}
            removed = 0
            for folder, _dirs, files in os.walk(self.masks_dir):
                for name in files:
                    path = Path(folder) / name
                    if path.relative_to(self.masks_dir).as_posix() not in referenced:
                        path.unlink(missing_ok=True)
                        removed += 1
            return removed

    def verify(self) -> list[str]:
        """Problems found (empty = healthy): SQLite integrity, missing or altered mask files,
        gaps in version numbers."""
        problems = [r[0] for r in self._query("PRAGMA integrity_check") if r[0] != "ok"]
        for file, sha in self._query("SELECT file, sha256 FROM annotation_masks"):
            try:
                if hashlib.sha256((self.masks_dir / file).read_bytes()).hexdigest() != sha:
                    problems.append(f"{file}: content differs from the recorded sha256")
            except OSError:
                problems.append(f"{file}: mask file is missing")
        for rel, n, top in self._query(
            "SELECT i.rel_path, COUNT(*), MAX(a.version) FROM annotations a JOIN images i"
            " ON i.id = a.image_id GROUP BY i.id"
        ):
            if n != top:
                problems.append(f"{rel}: versions are not 1..{top} ({n} rows)")
        return problems

    # ------------------------------------------------------------------ internals

    def _check_writable(self) -> None:
        if self._conn is None:
            raise ProjectStoreError(f"{self.root}: the project is closed")
        if self.read_only:
            raise ReadOnlyProjectError(
                f"{self.root} is open read-only (another LungSAM window is writing to it); "
                "close that window and reopen the folder to save"
            )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._check_writable()
        with self._mutex:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise ProjectStoreError(
                    f"{self.dir / 'project.db'}: could not save ({exc})"
                ) from exc

    def _query(self, sql: str, args: Iterable[object] = ()) -> list[tuple]:
        with self._mutex:
            if self._conn is None:
                raise ProjectStoreError(f"{self.root}: the project is closed")
            try:
                return self._conn.execute(sql, tuple(args)).fetchall()
            except sqlite3.Error as exc:
                raise ProjectStoreError(
                    f"{self.dir / 'project.db'}: could not read ({exc})"
                ) from exc

    def _rel(self, path: Path | str) -> str:
        """Root-relative POSIX path; absolute paths must lie inside root."""
        p = Path(path)
        if p.is_absolute():
            for base in (self.root, self._real_root):
                try:
                    p = p.relative_to(base)
                    break
                except ValueError:
                    continue
            else:
                try:
                    p = p.resolve().relative_to(self._real_root)
                except ValueError:
                    raise ImageNotInProjectError(
                        f"{path}: the image is not inside the project folder {self.root}"
                    ) from None
        rel = posixpath.normpath(p.as_posix())
        if rel in (".", "..") or rel.startswith("../"):
            raise ImageNotInProjectError(
                f"{path}: not an image path inside the project folder {self.root}"
            )
        return rel

    def _image_id(self, conn: sqlite3.Connection, rel: str, create: bool) -> int:
        row = conn.execute("SELECT id FROM images WHERE rel_path = ?", (rel,)).fetchone()
        if row is not None:
            return row[0]
        if not (create and (self.root / rel).is_file()):
            raise ImageNotInProjectError(
                f"{rel}: this image is not in the project and no such file exists in {self.root}"
            )
        return conn.execute(
            "INSERT INTO images (rel_path) VALUES (?) RETURNING id", (rel,)
        ).fetchone()[0]

    def _annotation(self, row: tuple, with_masks: bool) -> Annotation:
        ann_id, rel, version, kind, model_name, model_hash, created, prompts_json = row
        masks = self._load_masks(ann_id, rel) if with_masks else {}
        return Annotation(
            rel, version, kind, model_name, model_hash, created, json.loads(prompts_json), masks
        )

    def _load_masks(self, annotation_id: int, rel: str) -> dict[str, np.ndarray]:
        masks = {}
        for label, file, sha, width, height in self._query(
            "SELECT label, file, sha256, width, height FROM annotation_masks WHERE annotation_id = ?",
            [annotation_id],
        ):
            path = self.masks_dir / file
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ProjectStoreError(
                    f"{rel}: mask file {path} is missing ({exc.strerror})"
                ) from exc
            if hashlib.sha256(data).hexdigest() != sha:
                raise ProjectStoreError(f"{rel}: mask file {path} was changed outside LungSAM")
            mask = decode_mask_png(data)
            if mask.shape != (height, width):
                raise ProjectStoreError(f"{rel}: mask file {path} has the wrong size")
            masks[label] = mask
        return {label: masks[label] for label in LABELS if label in masks}


