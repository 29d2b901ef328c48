"""Annotation project store: one SQLite file and mask PNGs inside the image folder.

Layout under ``<root>/.lungsam/``: ``project.db`` (SQLite, WAL, ``synchronous=FULL``),
``masks/<image_id>/v<version>_<label>.png`` (1-bit, original image size) and ``lock``.

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
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator
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
    UnwritableProjectError,
)
from engine.project.health import copy_database, inspect_database
from engine.project.labels import KINDS, LABELS, STATUSES
from engine.project.layout import DB_FILE, LOCK_FILE, MASKS_DIR
from engine.project.lock import acquire_lock, claim_lock, probe_lock, release_lock
from engine.project.maintenance import MaintenanceMixin
from engine.project.mask_png import decode_mask_png, encode_mask_png, label_slug
from engine.project.model_versions import ModelVersionsMixin
from engine.project.opening import newer_reason, raise_unreadable, writable_problem
from engine.project.review import ReviewMixin
from engine.project.schema import MIGRATIONS, SCHEMA_VERSION, backup_database, create_tables

__all__ = [  # the public API, re-exported so callers import from one place
    "KINDS", "LABELS", "STATUSES", "Annotation", "ImageNotInProjectError", "ImageRecord",
    "MaskShapeError", "ProjectLockedError", "ProjectStore", "ProjectStoreError",
    "ReadOnlyProjectError", "UnknownLabelError", "decode_mask_png", "encode_mask_png", "label_slug",
]

BUSY_TIMEOUT_MS = 10_000


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

        Raises :class:`ProjectLockedError` when another window writes to it (the caller may
        retry with ``read_only=True``), and an :class:`UnreadableProjectError` (damaged,
        newer, unwritable) *before changing anything in the folder*: the caller may then show
        it through :meth:`open_copy`. An older schema is backed up, then upgraded.
        """
        root = Path(root).expanduser().absolute()
        if not root.is_dir():
            raise ProjectStoreError(f"{root}: the image folder does not exist")
        if read_only:
            return cls._open_shared(root)
        pdir = root / cls.DIRNAME
        lock_fd = probe_lock(pdir / LOCK_FILE, root)  # a live writer: locked, before any copy
        try:
            state = inspect_database(root)
            raise_unreadable(root, state)
            unwritable = writable_problem(root)
            if unwritable is not None:
                raise UnwritableProjectError(f"{root}: {unwritable}; opened read-only", unwritable)
            try:
                (pdir / MASKS_DIR).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UnwritableProjectError(
                    f"{root}: cannot create {cls.DIRNAME} ({exc.strerror}); opened read-only",
                    f"cannot write to the folder ({exc.strerror})",
                ) from exc
            if lock_fd is None:
                lock_fd = acquire_lock(pdir / LOCK_FILE, root)
            else:
                claim_lock(lock_fd, root)
        except BaseException:
            release_lock(lock_fd)
            raise
        conn = None
        try:
            conn = sqlite3.connect(pdir / DB_FILE, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            store = cls(root, False, conn, lock_fd)
            store._prepare_schema(state.version or 0, backup=True)
            store.orphans_removed = store.vacuum_orphans()
            return store
        except BaseException as exc:
            if conn is not None:
                conn.close()
            release_lock(lock_fd)
            if isinstance(exc, sqlite3.DatabaseError):
                raise ProjectStoreError(
                    f"{pdir / DB_FILE}: the project database is unusable ({exc})"
                ) from exc
            raise

    @classmethod
    def _open_shared(cls, root: Path) -> ProjectStore:
        """Read-only beside a live writer (which holds the lock): a query-only connection
        to the real file, so this window sees the writer's saves."""
        db_file = root / cls.DIRNAME / DB_FILE
        if not db_file.is_file():
            raise ProjectStoreError(
                f"{root}: there is no LungSAM project here yet; open it for writing once"
            )
        state = inspect_database(root, copy=False)
        if state.kind == "damaged" or (state.version or 0) < SCHEMA_VERSION:
            return cls.open_copy(root, cls.SHARED)
        conn = sqlite3.connect(db_file, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA query_only = ON")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ProjectStoreError(f"{db_file}: the project database is unusable ({exc})") from exc
        store = cls(root, True, conn, None)
        if state.kind == "newer":
            store.read_only_reason = newer_reason(state.version or 0)
        return store

    @classmethod
    def open_copy(cls, root: str | Path, reason: str) -> ProjectStore:
        """A read-only view of a project that may not be changed: its database copied into a
        private temporary folder (a damaged one replaced by an empty database, so the images
        still show), masks read in place. Nothing is ever written into ``root``."""
        root = Path(root).expanduser().absolute()
        state = inspect_database(root)
        tmp = Path(tempfile.mkdtemp(prefix="lungsam-readonly-"))
        target = tmp / DB_FILE
        try:
            if state.kind in ("ok", "newer"):
                copy_database(root, tmp)
            conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys = ON")
            store = cls(root, False, conn, None)  # writable only for the private upgrade
            store._copy_dir = tmp
            version = state.version if state.kind in ("ok", "newer") else 0
            store._prepare_schema(version or 0, backup=False)
            conn.execute("PRAGMA query_only = ON")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        store.read_only = True
        store.read_only_reason = reason
        return store

    def _prepare_schema(self, version: int, backup: bool) -> None:
        """Create the tables (fresh file) or upgrade ``version`` (after a backup when
        ``backup``); a newer version is left alone."""
        if version >= SCHEMA_VERSION:
            return
        if version > 0 and backup:
            self.backup = backup_database(self._conn, self.root, f"schema{version}")
        with self._transaction() as conn:
            if version == 0:
                create_tables(conn)
                return
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](conn, self.root)
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]
            if self._copy_dir is not None:
                shutil.rmtree(self._copy_dir, ignore_errors=True)
                self._copy_dir = None
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
