"""Housekeeping of a project folder: sweeping orphaned mask files and checking integrity.

Why it exists: these walk the whole folder rather than one image, run when a writer opens the
project (sweep) or on request (verify), and change no annotation; they read best apart from
the save/load code. :class:`ProjectStore` inherits :class:`MaintenanceMixin`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from engine.project.db import ProjectDB
from engine.project.schema import file_content


class MaintenanceMixin(ProjectDB):
    """Orphan sweep and health check of the database and its mask files."""

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

    def relink_renamed(self) -> list[tuple[str, str]]:
        """Annotated images whose file is gone, found again under a new name by their content
        (size, then sha256, so only same-size newcomers are read): the image row, with all
        its versions, takes the new name. Returns (old, new) pairs. Writer only."""
        self._check_writable()
        gone: dict[tuple[str, int], list[tuple[int, str]]] = {}
        for image_id, rel, sha, size in self._query(
            "SELECT id, rel_path, file_sha256, file_size FROM images WHERE file_sha256 IS NOT NULL"
            " AND id IN (SELECT image_id FROM annotations)"
        ):
            if not (self.root / rel).exists():
                gone.setdefault((sha, size), []).append((image_id, rel))
        if not gone:
            return []
        sizes = {size for _sha, size in gone}
        moved = []
        for new_id, new_rel in self._query(
            "SELECT id, rel_path FROM images WHERE id NOT IN (SELECT image_id FROM annotations)"
            " ORDER BY rel_path"
        ):
            try:
                size = (self.root / new_rel).stat().st_size
            except OSError:
                continue
            if size not in sizes:
                continue
            content = file_content(self.root / new_rel)
            owners = gone.get(content) if content is not None else None
            if not owners:
                continue
            old_id, old_rel = owners.pop(0)
            with self._transaction() as conn:
                conn.execute("DELETE FROM images WHERE id = ?", (new_id,))  # an empty row
                conn.execute("UPDATE images SET rel_path = ? WHERE id = ?", (new_rel, old_id))
            moved.append((old_rel, new_rel))
        return moved

    def image_problems(self) -> dict[str, str]:
        """rel_path -> what is wrong, per annotated image, from ``stat`` alone (fast enough
        for every open): the image file missing or of another size than the one its masks were
        drawn on, or a mask file of the newest version missing. Hash checks: :meth:`verify`,
        the loader (image content) and :meth:`latest_annotation` (mask files)."""
        problems: dict[str, str] = {}
        for rel, size, count in self._query(
            "SELECT i.rel_path, i.file_size, COUNT(a.id) FROM images i JOIN annotations a"
            " ON a.image_id = i.id GROUP BY i.id"
        ):
            try:
                actual = (self.root / rel).stat().st_size
            except OSError:
                problems[rel] = f"the image file is missing ({count} saved versions are kept)"
                continue
            if size is not None and actual != size:
                problems[rel] = ("the image file changed since its masks were saved; they are "
                                 "not shown on the new image (kept in the project)")
        for rel, version, file in self._query(
            "SELECT i.rel_path, a.version, m.file FROM images i JOIN annotations a ON a.image_id"
            " = i.id JOIN annotation_masks m ON m.annotation_id = a.id WHERE a.version ="
            " (SELECT MAX(version) FROM annotations WHERE image_id = i.id)"
        ):
            if rel not in problems and not (self.masks_dir / file).is_file():
                problems[rel] = f"a mask file of version {version} is missing (masks/{file})"
        return problems

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
