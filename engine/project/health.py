"""What is wrong with a project folder, found without changing a byte of it.

Why it exists: a damaged project must be diagnosed before anything opens it for writing
(opening runs upgrades and sweeps, and SQLite itself writes ``-wal``/``-shm`` files and may
"recover" a journal), so this module reads the database's header directly and runs SQLite
only on a private copy in a temporary folder. :func:`inspect_database` is the verdict
:meth:`ProjectStore.open` acts on; :func:`check_project` is the full report of
``lungsam project check`` (database, every mask file against its sha256, image files against
the content their masks were drawn on, orphans).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.project.layout import DB_FILE, PROJECT_DIR, masks_dir, project_dir
from engine.project.schema import SCHEMA_VERSION, file_content, missing_columns

CORRUPT = "the project database is corrupt or not a database"
SQLITE_MAGIC = b"SQLite format 3\x00"
REPAIR_HINT = "run `lungsam project check FOLDER --repair` to rebuild it from the mask files"


@dataclass(frozen=True)
class DatabaseState:
    """``kind``: absent (no project yet), fresh (an empty SQLite file and no masks: a first
    open that was interrupted), ok (``version`` <= ours), newer, or damaged (``problem``)."""

    kind: str
    version: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Problem:
    """One line of a check: what is damaged (``subject``) and how; ``repairable`` when
    ``--repair`` fixes it."""

    subject: str
    message: str
    repairable: bool = False

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


def mask_files(root: Path) -> list[str]:
    """Every ``masks/<id>/<name>.png`` (POSIX, relative to ``masks/``), temporary files left out."""
    base = masks_dir(root)
    found = []
    for folder, _dirs, files in os.walk(base):
        for name in files:
            if name.endswith(".png") and not name.startswith("."):
                found.append((Path(folder) / name).relative_to(base).as_posix())
    return sorted(found)


def header_problem(path: Path) -> str | None:
    """What the first 100 bytes and the size say is wrong (None: plausible SQLite file)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        return f"the project database cannot be read ({exc.strerror})"
    if size == 0:
        return None  # an empty file: decided by the caller (fresh or damaged)
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return CORRUPT
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return CORRUPT
    pages = int.from_bytes(header[28:32], "big")
    if header[24:28] == header[92:96] and size < pages * page_size:
        return f"{CORRUPT} (truncated: {size} of {pages * page_size} bytes)"
    if size % page_size:
        return f"{CORRUPT} (truncated: {size} bytes is not a whole number of pages)"
    return None


def copy_database(root: Path, folder: Path) -> Path:
    """``project.db`` and its ``-wal`` (so committed saves come along) copied into ``folder``.
    Consistent when no writer is active (the caller holds the lock or knows the folder is
    idle)."""
    source = project_dir(root) / DB_FILE
    target = folder / DB_FILE
    shutil.copyfile(source, target)
    with contextlib.suppress(FileNotFoundError):
        shutil.copyfile(source.with_name(DB_FILE + "-wal"), target.with_name(DB_FILE + "-wal"))
    return target


@contextlib.contextmanager
def database_copy(root: Path) -> Iterator[Path]:
    """:func:`copy_database` into a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="lungsam-db-") as tmp:
        yield copy_database(root, Path(tmp))


def inspect_connection(conn: sqlite3.Connection, integrity: bool = True) -> DatabaseState:
    """The verdict on an open connection (to a copy, or read-only); ``integrity`` adds SQLite's
    ``quick_check`` (it reads the whole file, so it is left out where a live writer vouches)."""
    try:
        check = conn.execute("PRAGMA quick_check").fetchall() if integrity else [("ok",)]
        if [r[0] for r in check] != ["ok"]:
            return DatabaseState("damaged", problem=f"{CORRUPT} ({check[0][0]})")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return DatabaseState("fresh")
        if "schema_version" not in tables:
            return DatabaseState("damaged", problem="the project database is not a LungSAM "
                                 "project database (it has no schema_version table)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None or not isinstance(row[0], int) or row[0] < 1:
            return DatabaseState("damaged", problem="the project database has no valid schema "
                                 "version")
        version = row[0]
        missing = missing_columns(conn, version)
        if missing:
            return DatabaseState("damaged", version, "the project database is not a LungSAM "
                                 f"schema-{version} database (missing {', '.join(missing[:4])})")
        return DatabaseState("newer" if version > SCHEMA_VERSION else "ok", version)
    except sqlite3.DatabaseError as exc:
        return DatabaseState("damaged", problem=f"{CORRUPT} ({exc})")


def inspect_database(root: Path, copy: bool = True) -> DatabaseState:
    """The database's state, read without writing anything into the folder: header first,
    then SQLite on a private copy (``copy``, with an integrity check) or through a read-only
    connection (beside a live writer, which makes a copy unsafe and vouches for the file: the
    schema is checked, not every page)."""
    root = Path(root)
    path = project_dir(root) / DB_FILE
    if not path.exists():
        masks = mask_files(root)
        if masks:
            return DatabaseState("damaged", problem=f"the project database is missing but "
                                 f"{len(masks)} mask files remain")
        return DatabaseState("absent")
    problem = header_problem(path)
    if problem is not None:
        return DatabaseState("damaged", problem=problem)
    if path.stat().st_size == 0:
        masks = mask_files(root)
        if masks:
            return DatabaseState("damaged", problem=f"the project database is empty (0 bytes) "
                                 f"but {len(masks)} mask files remain")
        return DatabaseState("fresh")
    try:
        with contextlib.ExitStack() as stack:
            if copy:
                target = stack.enter_context(database_copy(root))
                conn = sqlite3.connect(target)
            else:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            stack.callback(conn.close)
            state = inspect_connection(conn, integrity=copy)
    except (OSError, sqlite3.Error) as exc:
        return DatabaseState("damaged", problem=f"{CORRUPT} ({exc})")
    if state.kind == "fresh" and mask_files(root):
        return DatabaseState("damaged", problem="the project database has no tables but mask "
                             "files remain")
    return state


def check_project(root: Path) -> list[Problem]:
    """Every problem of the project at ``root`` (empty: healthy). Reads only."""
    root = Path(root)
    database = f"{PROJECT_DIR}/{DB_FILE}"
    state = inspect_database(root)
    if state.kind == "absent":
        return [Problem(str(root), "there is no LungSAM project here (no .lungsam/project.db)")]
    if state.kind == "damaged":
        assert state.problem is not None
        return [Problem(database, f"{state.problem}; --repair rebuilds it from the mask files",
                        repairable=True)]
    if state.kind == "fresh":
        return []
    problems = []
    if state.kind == "newer":
        problems.append(Problem(database, f"written by a newer LungSAM (schema {state.version}; "
                                f"this version knows up to {SCHEMA_VERSION}): it is only read, "
                                "never changed; check it with that version"))
    with database_copy(root) as copy:
        conn = sqlite3.connect(copy)
        try:
            problems += _check_rows(conn, root, state.version or 1)
        finally:
            conn.close()
    return problems


def _check_rows(conn: sqlite3.Connection, root: Path, version: int) -> list[Problem]:
    problems = []
    base = masks_dir(root)
    referenced = set()
    for rel, number, label, file, sha in conn.execute(
        "SELECT i.rel_path, a.version, m.label, m.file, m.sha256 FROM annotation_masks m"
        " JOIN annotations a ON a.id = m.annotation_id JOIN images i ON i.id = a.image_id"
        " ORDER BY i.rel_path, a.version, m.label"
    ):
        referenced.add(file)
        try:
            digest = hashlib.sha256((base / file).read_bytes()).hexdigest()
        except OSError:
            problems.append(Problem(rel, f"the {label!r} mask of version {number} is missing "
                                    f"(masks/{file})"))
            continue
        if digest != sha:
            problems.append(Problem(rel, f"the {label!r} mask of version {number} was changed "
                                    f"outside LungSAM (masks/{file} differs from its sha256)"))
    for rel, count, top in conn.execute(
        "SELECT i.rel_path, COUNT(*), MAX(a.version) FROM annotations a JOIN images i"
        " ON i.id = a.image_id GROUP BY i.id ORDER BY i.rel_path"
    ):
        if count != top:
            problems.append(Problem(rel, f"annotation versions are not 1..{top} ({count} rows)"))
    columns = "i.file_sha256" if version >= 2 else "NULL"
    for rel, count, sha in conn.execute(
        f"SELECT i.rel_path, COUNT(a.id), {columns} FROM images i JOIN annotations a"
        " ON a.image_id = i.id GROUP BY i.id ORDER BY i.rel_path"
    ):
        if not (root / rel).is_file():
            problems.append(Problem(rel, f"the image file is missing ({count} annotation "
                                    "versions are kept)"))
        elif sha is not None and (file_content(root / rel) or ("",))[0] != sha:
            problems.append(Problem(rel, "the image file changed since its masks were saved "
                                    "(replaced?); its masks are not shown on the new image"))
    for file in mask_files(root):
        if file not in referenced:
            problems.append(Problem(f"masks/{file}", "no annotation version refers to this mask "
                                    "file (left by an interrupted save); --repair moves it to "
                                    ".lungsam/backups/", repairable=True))
    return sorted(problems, key=lambda p: (p.subject.startswith("masks/"), p.subject))
