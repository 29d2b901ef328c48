"""The decisions :meth:`ProjectStore.open` takes before it touches a folder: may this project be
opened for writing, and if not, what does the user read.

Why it exists: "never change a project you could not read" is one rule with several causes
(damaged database, newer schema, read-only file system, no permission); each becomes an
:class:`~engine.project.errors.UnreadableProjectError` whose ``reason`` is the banner's line.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.project.errors import DamagedProjectError, NewerProjectError
from engine.project.health import REPAIR_HINT, DatabaseState
from engine.project.layout import DB_FILE, project_dir
from engine.project.schema import SCHEMA_VERSION


def newer_reason(version: int) -> str:
    return (f"this project was written by a newer LungSAM (schema {version}; this version "
            f"knows up to {SCHEMA_VERSION}); it is shown read-only and never upgraded")


def raise_unreadable(root: Path, state: DatabaseState) -> None:
    """Raise for a damaged or newer database; return for absent, fresh and ok ones."""
    if state.kind == "damaged":
        problem = state.problem or "the project database is damaged"
        raise DamagedProjectError(
            f"{project_dir(root) / DB_FILE}: {problem}; nothing in the folder was changed; "
            f"{REPAIR_HINT.replace('FOLDER', str(root))}",
            f"{problem}; nothing is saved ({REPAIR_HINT})",
        )
    if state.kind == "newer":
        reason = newer_reason(state.version or 0)
        raise NewerProjectError(f"{root}: {reason}", reason, state.version or 0)


def writable_problem(root: Path) -> str | None:
    """Why the project (or, before it exists, the folder) cannot be written, else None."""
    pdir = project_dir(root)
    targets = [pdir, pdir / DB_FILE] if pdir.exists() else [root]
    for target in targets:
        if target.exists() and not os.access(target, os.W_OK):
            try:
                read_only_fs = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
            except OSError:
                read_only_fs = False
            if read_only_fs:
                return "the folder is on a read-only file system"
            return f"no write permission for {target}"
    return None
