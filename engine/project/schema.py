"""The project database's tables, their version and the steps that upgrade older ones.

Why it exists: the store (which opens), the health check (which reads damaged folders
without opening them for writing) and the repair (which rebuilds a database) all need to
know what a LungSAM database of each version holds. Upgrades only ever add (columns,
tables), so an older LungSAM can still read what it knows of a newer file; it never writes
one (:class:`~engine.project.errors.NewerProjectError`). Before any upgrade the old database
is copied to ``.lungsam/backups/`` (:func:`backup_database`).

Version history: 1 the first release; 2 adds the image content (sha256, size) each
annotation was drawn on, so a replaced image never silently inherits old masks.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from engine.atomic import fsync_dir
from engine.project.layout import backups_dir

SCHEMA_VERSION = 2

TABLES = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE images (
        id INTEGER PRIMARY KEY, rel_path TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL DEFAULT 'new'
            CHECK (status IN ('new', 'model', 'corrected', 'skipped')),
        updated REAL, width INTEGER, height INTEGER, file_sha256 TEXT, file_size INTEGER)""",
    """CREATE TABLE annotations (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        version INTEGER NOT NULL CHECK (version >= 1),
        kind TEXT NOT NULL CHECK (kind IN ('model', 'corrected')),
        model_name TEXT, model_hash TEXT, created REAL NOT NULL,
        prompts_json TEXT NOT NULL DEFAULT '{}', image_sha256 TEXT, UNIQUE (image_id, version))""",
    """CREATE TABLE annotation_masks (
        annotation_id INTEGER NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
        label TEXT NOT NULL, file TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL,
        width INTEGER NOT NULL, height INTEGER NOT NULL, PRIMARY KEY (annotation_id, label))""",
    """CREATE TABLE model_versions (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
        created REAL NOT NULL, provenance_json TEXT NOT NULL, metrics_json TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 0)""",
)

_V1_COLUMNS: dict[str, set[str]] = {
    "meta": {"key", "value"},
    "images": {"id", "rel_path", "status", "updated", "width", "height"},
    "annotations": {"id", "image_id", "version", "kind", "model_name", "model_hash", "created",
                    "prompts_json"},
    "annotation_masks": {"annotation_id", "label", "file", "sha256", "width", "height"},
    "model_versions": {"id", "name", "path", "created", "provenance_json", "metrics_json",
                       "active"},
}
REQUIRED_COLUMNS: dict[int, dict[str, set[str]]] = {
    1: _V1_COLUMNS,
    2: {**_V1_COLUMNS, "images": _V1_COLUMNS["images"] | {"file_sha256", "file_size"},
        "annotations": _V1_COLUMNS["annotations"] | {"image_sha256"}},
}
"""What a database of each version must hold (a newer one: at least the newest we know)."""


def missing_columns(conn: sqlite3.Connection, version: int) -> list[str]:
    """``table`` or ``table.column`` names a database of ``version`` should have but lacks."""
    wanted = REQUIRED_COLUMNS[min(version, SCHEMA_VERSION)]
    missing = []
    for table, columns in wanted.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if not have:
            missing.append(table)
        else:
            missing.extend(f"{table}.{c}" for c in sorted(columns - have))
    return missing


def create_tables(conn: sqlite3.Connection) -> None:
    """A new, empty database of :data:`SCHEMA_VERSION` (inside the caller's transaction)."""
    for statement in TABLES:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
    conn.execute("INSERT INTO meta VALUES ('created', ?)", (repr(time.time()),))


def file_content(path: Path) -> tuple[str, int] | None:
    """(sha256, size) of a file's bytes, or None when it cannot be read."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except OSError:
        return None
    return digest.hexdigest(), size


def _upgrade_1_to_2(conn: sqlite3.Connection, root: Path) -> None:
    """Add the image content columns; annotated images present now are taken to be the ones
    their masks were drawn on (the best an upgrade can know)."""
    conn.execute("ALTER TABLE images ADD COLUMN file_sha256 TEXT")
    conn.execute("ALTER TABLE images ADD COLUMN file_size INTEGER")
    conn.execute("ALTER TABLE annotations ADD COLUMN image_sha256 TEXT")
    for image_id, rel in conn.execute(
        "SELECT id, rel_path FROM images WHERE id IN (SELECT image_id FROM annotations)"
    ).fetchall():
        content = file_content(root / rel)
        if content is None:
            continue
        conn.execute("UPDATE images SET file_sha256 = ?, file_size = ? WHERE id = ?",
                     (*content, image_id))
        conn.execute("UPDATE annotations SET image_sha256 = ? WHERE image_id = ?",
                     (content[0], image_id))


MIGRATIONS: dict[int, Callable[[sqlite3.Connection, Path], None]] = {1: _upgrade_1_to_2}
"""``MIGRATIONS[v](conn, root)`` upgrades schema ``v`` to ``v + 1`` inside the writer's open
transaction. Bump :data:`SCHEMA_VERSION` together with adding a step."""


def backup_database(conn: sqlite3.Connection, root: Path, tag: str) -> Path:
    """A consistent copy of the open database (SQLite's backup API, so WAL content is in it)
    at ``.lungsam/backups/project.db.<tag>-<time>.bak``, written under a temporary name and
    renamed when complete."""
    folder = backups_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = folder / f"project.db.{tag}-{stamp}.bak"
    n = 1
    while target.exists():
        n += 1
        target = folder / f"project.db.{tag}-{stamp}-{n}.bak"
    tmp = target.with_name(f".{target.name}.tmp")
    dest = sqlite3.connect(tmp)
    try:
        conn.backup(dest)
    finally:
        dest.close()
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    tmp.replace(target)
    fsync_dir(folder)
    return target
