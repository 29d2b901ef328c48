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

The parts live in their own modules, all mixed into :class:`ProjectStore`:
:mod:`engine.project.db` (connection, transactions, paths), :mod:`engine.project.annotations`
(saving and loading versions), :mod:`engine.project.model_versions` (trained model versions),
:mod:`engine.project.maintenance` (orphan sweep, verify) and :mod:`engine.project.review` (the
review queue's quality scores). This module opens the folder, creates or upgrades the schema and
keeps the image list.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.project.annotations import Annotation, AnnotationsMixin
from engine.project.errors import (
    ImageNotInProjectError,
    MaskShapeError,
    ProjectLockedError,
    ProjectStoreError,
    ReadOnlyProjectError,
    UnknownLabelError,
)
from engine.project.labels import KINDS, LABELS, STATUSES
from engine.project.layout import DB_FILE, LOCK_FILE, MASKS_DIR
from engine.project.lock import acquire_lock, release_lock
from engine.project.maintenance import MaintenanceMixin
from engine.project.mask_png import decode_mask_png, encode_mask_png, label_slug
from engine.project.model_versions import ModelVersionsMixin
from engine.project.review import ReviewMixin

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


class ProjectStore(AnnotationsMixin, ModelVersionsMixin, MaintenanceMixin, ReviewMixin):
    """The annotation database of one image folder. Use :meth:`open`, not the constructor."""

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
        db_path = root / cls.DIRNAME / DB_FILE
        lock_fd = None
        if read_only:
            if not db_path.is_file():
                raise ProjectStoreError(
                    f"{root}: there is no LungSAM project here yet; open it for writing once"
                )
        else:
            try:
                (root / cls.DIRNAME / MASKS_DIR).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ProjectStoreError(
                    f"{root}: cannot create {cls.DIRNAME} ({exc.strerror}); "
                    "the folder may be read-only: open the project read-only"
                ) from exc
            lock_fd = acquire_lock(root / cls.DIRNAME / LOCK_FILE, root)
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

    def latest_annotations(
        self, kind: str | None = None
    ) -> Iterator[tuple[ImageRecord, Annotation]]:
        """(image, newest annotation of ``kind`` or any kind) per annotated image, by rel_path;
        masks are loaded one image at a time (exports of large projects stay small in memory)."""
        for record in self.list_images():
            annotation = self.latest_annotation(record.rel_path, kind)
            if annotation is not None:
                yield record, annotation
