"""The connection layer under :class:`engine.project.store.ProjectStore`.

Why it exists: the project's tables (images, annotations, model versions) and its maintenance
each live in their own module, and all of them need the same few primitives: one SQLite
connection behind one lock, write transactions that turn SQLite errors into
:class:`ProjectStoreError`, reads, root-relative paths and image ids. :class:`ProjectDB` holds
exactly those; it opens nothing itself (see :meth:`ProjectStore.open`).
"""

from __future__ import annotations

import json
import posixpath
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from engine.project.errors import (
    ImageNotInProjectError,
    ProjectStoreError,
    ReadOnlyProjectError,
)
from engine.project.layout import DB_FILE, MASKS_DIR, PROJECT_DIR


def to_json(value: object, what: str) -> str:
    """``value`` as JSON text for a ``*_json`` column (numpy values and paths allowed);
    :class:`ProjectStoreError` naming ``what`` when it cannot be encoded."""

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


class ProjectDB:
    """One project's connection, its lock and the helpers every table uses. Thread-safe."""

    DIRNAME = PROJECT_DIR
    SHARED = "another LungSAM window is writing to this folder"
    """The read-only reason of a window beside a live writer."""

    def __init__(
        self, root: Path, read_only: bool, conn: sqlite3.Connection, lock_fd: int | None
    ) -> None:
        self.root, self.read_only = root, read_only
        self.dir = root / self.DIRNAME
        self.masks_dir = self.dir / MASKS_DIR
        self._real_root = root.resolve()
        self._conn, self._lock_fd = conn, lock_fd
        self._mutex = threading.RLock()
        self.orphans_removed = 0
        """Mask files of unfinished saves swept when this writer opened the folder."""
        self.read_only_reason: str | None = self.SHARED if read_only else None
        """Why this store is read-only, in words for the window's banner."""
        self.backup: Path | None = None
        """The database as it was before this open upgraded its schema."""
        self._copy_dir: Path | None = None  # the private copy a read-only view reads

    def _check_writable(self) -> None:
        """Raise unless the project is open for writing."""
        if self._conn is None:
            raise ProjectStoreError(f"{self.root}: the project is closed")
        if self.read_only:
            raise ReadOnlyProjectError(
                f"{self.root} is open read-only ({self.read_only_reason}); nothing is saved"
            )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` write transaction: committed on success, else rolled back."""
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
                    f"{self.dir / DB_FILE}: could not save ({exc})"
                ) from exc

    def _query(self, sql: str, args: Iterable[object] = ()) -> list[tuple]:
        """All rows of one read statement."""
        with self._mutex:
            if self._conn is None:
                raise ProjectStoreError(f"{self.root}: the project is closed")
            try:
                return self._conn.execute(sql, tuple(args)).fetchall()
            except sqlite3.Error as exc:
                raise ProjectStoreError(
                    f"{self.dir / DB_FILE}: could not read ({exc})"
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
        """Row id of image ``rel``; with ``create``, registers it when its file exists."""
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
