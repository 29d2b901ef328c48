"""Trained model versions of a project: the ``model_versions`` table.

Why it exists: the trainer records each model it trains beside the annotations it learned from,
and the GUI picks one as active; that bookkeeping has nothing to do with masks, so it is kept
apart. :class:`ProjectStore` inherits :class:`ModelVersionsMixin`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.project.db import ProjectDB, to_json
from engine.project.errors import ProjectStoreError


class ModelVersionsMixin(ProjectDB):
    """Record, list and activate trained model versions (at most one active)."""

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
                    to_json(provenance, "provenance"),
                    to_json(metrics, "metrics"),
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
        """Make model version ``name`` the only active one."""
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
        """The active model version (as in :meth:`list_model_versions`), or None."""
        return next((m for m in self.list_model_versions() if m["active"]), None)
