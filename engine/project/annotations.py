"""Saved annotations of a project: the ``annotations`` and ``annotation_masks`` tables and the
mask PNGs they point at.

Why it exists: saving and reading back a version is the store's one subtle protocol (files
first, fsynced and renamed, then one transaction recording each PNG's sha256; reads check that
hash), and it reads best on its own. :class:`ProjectStore` inherits :class:`AnnotationsMixin`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.atomic import atomic_write_bytes, fsync_dir
from engine.project.db import ProjectDB, to_json
from engine.project.errors import (
    DiskFullError,
    ImageNotInProjectError,
    MaskShapeError,
    ProjectStoreError,
)
from engine.project.labels import KINDS, LABELS
from engine.project.mask_png import clean_masks, decode_mask_png, encode_mask_png, label_slug
from engine.project.schema import file_content


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
    image_sha256: str | None = None
    """sha256 of the image file this version was drawn on (None: unknown, saved before
    schema 2 for an image absent at the upgrade)."""


DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class AnnotationsMixin(ProjectDB):
    """Save, list and load annotation versions (numbered 1, 2, 3... per image)."""

    def save_annotation(
        self,
        rel_path: str,
        masks: dict[str, np.ndarray],
        kind: str,
        model_name: str | None = None,
        model_hash: str | None = None,
        prompts: dict | None = None,
        image_content: tuple[str, int] | None = None,
    ) -> int:
        """Store a new version (files first, then one transaction); status becomes ``kind``.

        An image not yet registered is added if its file exists under root. Non-zero mask
        pixels are foreground. ``image_content``: (sha256, size) of the image the masks were
        drawn on (the GUI passes what it decoded; default: the file as it is now). Returns the
        new version number. A save that fails for space raises :class:`DiskFullError` and
        leaves every earlier version as it was.
        """
        self._check_writable()
        if kind not in KINDS:
            raise ProjectStoreError(
                f"unknown annotation kind {kind!r}; expected 'model' or 'corrected'"
            )
        rel = self._rel(rel_path)
        clean = clean_masks(rel, masks)
        prompts_json = to_json(prompts or {}, f"{rel}: the prompts")
        content = image_content or file_content(self.root / rel)
        image_sha, image_size = content if content is not None else (None, None)
        try:
            return self._save(rel, clean, kind, model_name, model_hash, prompts_json,
                              image_sha, image_size)
        except OSError as exc:
            if exc.errno in DISK_FULL_ERRNOS:
                raise DiskFullError(
                    f"{rel}: the disk is full ({exc.strerror}); the previous version is kept, "
                    "and the next save tries again"
                ) from exc
            raise ProjectStoreError(f"{rel}: could not write the mask files ({exc})") from exc
        except ProjectStoreError as exc:
            if "full" in str(exc):  # SQLITE_FULL from the transaction
                raise DiskFullError(
                    f"{rel}: the disk is full ({exc}); the previous version is kept, and the "
                    "next save tries again"
                ) from exc
            raise

    def _save(self, rel: str, clean: dict[str, np.ndarray], kind: str, model_name: str | None,
              model_hash: str | None, prompts_json: str,
              image_sha: str | None, image_size: int | None) -> int:
        height, width = next(iter(clean.values())).shape
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
            now = time.time()
            meta = {"rel_path": rel, "image_id": image_id, "version": version, "kind": kind,
                    "model_name": model_name, "model_hash": model_hash, "created": now,
                    "image_sha256": image_sha, "image_size": image_size,
                    "prompts": json.loads(prompts_json)}
            for label, mask in clean.items():
                data = encode_mask_png(mask, {**meta, "label": label}, bits=1)
                name = f"{image_id}/v{version}_{label_slug(label)}.png"
                atomic_write_bytes(self.masks_dir / name, data)
                rows.append((label, name, hashlib.sha256(data).hexdigest(), width, height))
            with self._transaction() as conn:
                cursor = conn.execute(
                    "INSERT INTO annotations (image_id, version, kind, model_name, model_hash, created,"
                    " prompts_json, image_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (image_id, version, kind, model_name, model_hash, now, prompts_json, image_sha),
                )
                conn.executemany(
                    "INSERT INTO annotation_masks (annotation_id, label, file, sha256, width, height)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(cursor.lastrowid, *row) for row in rows],
                )
                conn.execute(
                    "UPDATE images SET status = ?, updated = ?, width = ?, height = ?,"
                    " file_sha256 = ?, file_size = ? WHERE id = ?",
                    (kind, now, width, height, image_sha, image_size, image_id),
                )
            return version

    _ANN_SQL = (
        "SELECT a.id, i.rel_path, a.version, a.kind, a.model_name, a.model_hash, a.created,"
        " a.prompts_json, a.image_sha256 FROM annotations a JOIN images i ON i.id = a.image_id "
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
        """Version ``version`` of image ``rel_path`` with its masks."""
        rel = self._rel(rel_path)
        rows = self._query(self._ANN_SQL + "WHERE i.rel_path = ? AND a.version = ?", [rel, version])
        if not rows:
            raise ImageNotInProjectError(f"{rel}: the project has no annotation version {version}")
        return self._annotation(rows[0], with_masks=True)

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

    def _annotation(self, row: tuple, with_masks: bool) -> Annotation:
        """An :class:`Annotation` from one ``_ANN_SQL`` row."""
        ann_id, rel, version, kind, model_name, model_hash, created, prompts_json, sha = row
        masks = self._load_masks(ann_id, rel) if with_masks else {}
        return Annotation(
            rel, version, kind, model_name, model_hash, created, json.loads(prompts_json), masks,
            sha,
        )

    def _load_masks(self, annotation_id: int, rel: str) -> dict[str, np.ndarray]:
        """The masks of one annotation, in :data:`LABELS` order, each checked against its sha256."""
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
