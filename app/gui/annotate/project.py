"""The annotation project behind the window: which images, which store, saving and export.

Qt-free glue between what the user opened (a folder, files, DICOM files) and
:class:`engine.project.store.ProjectStore`. Listing 5,000 images must take well under a
second, so files are found with ``os.scandir`` and :func:`engine.imaging.loader.is_supported_image`
(extension only for named files); nothing is decoded here. A folder that another window
is writing to, a damaged project, one written by a newer LungSAM and a folder that cannot be
written are opened read-only (``read_only_reason`` says why; the last three through a private
copy of the database, so nothing in the folder changes). ``problems`` names what is wrong per
image (missing image file, image replaced since its masks were saved, missing mask file).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from app.gui.annotate.review_queue import sort_records
from engine.atomic import atomic_write_bytes
from engine.errors import LungSamError
from engine.imaging import PixelSpacing, is_supported_image, read_pixel_spacing
from engine.project import (
    Annotation,
    ImageRecord,
    ProjectLockedError,
    ProjectStore,
    UnreadableProjectError,
    export_coco,
    export_dicom_seg,
    export_labelme,
    export_measurements,
    export_nifti,
    export_png,
    export_yolo,
)

EXPORT_FORMATS: dict[str, str] = {  # key -> what the export dialog calls it
    "png": "PNG masks (0/255, original size)",
    "coco": "COCO JSON (RLE)",
    "dicom_seg": "DICOM-SEG (for DICOM sources)",
    "nifti": "NIfTI (.nii.gz)",
    "labelme": "LabelMe JSON (polygons)",
    "yolo": "YOLO-seg txt (polygons)",
}
DEFAULT_FORMATS = ("png", "coco", "dicom_seg")

SKIP_DIRS = {ProjectStore.DIRNAME, "__pycache__", ".git"}
GUI_STATE = "gui-state.json"
"""In ``.lungsam/``: window state worth restoring (the image last viewed)."""


def scan_folder(root: Path) -> list[Path]:
    """Every supported image under ``root`` (recursively; hidden folders skipped), sorted."""
    found: list[Path] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") or entry.name in SKIP_DIRS:
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif entry.is_file() and is_supported_image(entry.path):
                found.append(Path(entry.path))
    return sorted(found)


def common_root(paths: list[Path]) -> Path:
    parents = [str(p.parent) for p in paths]
    return Path(os.path.commonpath(parents))


@dataclass
class Project:
    """An open store plus the image list shown in the window (in display order)."""

    store: ProjectStore
    records: list[ImageRecord]
    read_only_reason: str | None = None
    only: set[str] | None = field(default=None, repr=False)  # files opened explicitly
    notes: dict[str, str] = field(default_factory=dict, repr=False)  # why the last export skipped a format
    qualities: dict[str, float] = field(default_factory=dict, repr=False)  # rel -> newest model mask's quality
    unreadable: dict[str, str] = field(default_factory=dict, repr=False)  # rel -> why the folder job could not read it
    sort_mode: str = "name"  # records' display order (review_queue.SORT_MODES)
    problems: dict[str, str] = field(default_factory=dict, repr=False)  # rel_path -> what is wrong
    renamed: list[tuple[str, str]] = field(default_factory=list, repr=False)  # (old, new) found by content

    @property
    def root(self) -> Path:
        return self.store.root

    @property
    def read_only(self) -> bool:
        return self.store.read_only

    @classmethod
    def open(cls, paths: list[str | Path]) -> Project:
        """A folder (recursively) or a list of files; files share their common folder's project."""
        resolved = [Path(p).expanduser().absolute() for p in paths]
        if not resolved:
            raise LungSamError("nothing to open: give a folder or image files")
        missing = [p for p in resolved if not p.exists()]
        if missing:
            raise LungSamError(f"{missing[0]}: no such file or folder")
        single_folder = len(resolved) == 1 and resolved[0].is_dir()
        if single_folder:
            root, images = resolved[0], scan_folder(resolved[0])
        else:
            images = []
            for p in resolved:
                images.extend(scan_folder(p) if p.is_dir() else [p])
            root = common_root(images) if images else resolved[0].parent
        if not images:
            raise LungSamError(f"{root}: no images found (PNG, JPEG, TIFF, DICOM)")
        reason = None
        try:
            store = ProjectStore.open(root)
        except ProjectLockedError as exc:
            store = ProjectStore.open(root, read_only=True)
            reason = store.read_only_reason if store.read_only_reason != ProjectStore.SHARED else str(exc)
        except UnreadableProjectError as exc:  # damaged, newer, unwritable: touch nothing
            store = ProjectStore.open_copy(root, exc.reason)
            reason = exc.reason
        renamed: list[tuple[str, str]] = []
        if not store.read_only:
            store.register_images(images)
            renamed = store.relink_renamed()  # masks follow an image's content to its new name
        rels = {Path(os.path.relpath(p, root)).as_posix() for p in images}
        project = cls(store, [], reason, None if single_folder else rels)
        try:
            project.qualities = store.model_qualities()
        except LungSamError:
            project.qualities = {}  # a badge less, never a project that does not open
        project.renamed = renamed
        project.refresh(rels)
        project.check()
        return project

    def check(self) -> None:
        """``problems`` from the store's quick per-image check (never raises: a check that
        cannot run is itself reported)."""
        try:
            found = self.store.image_problems()
        except LungSamError as exc:
            found = {"": str(exc)}
        shown = {r.rel_path for r in self.records}
        self.problems = {rel: text for rel, text in found.items() if rel in shown or not rel}

    def flag(self, rel: str, text: str) -> None:
        """Record a problem found while working (an image replaced under the window)."""
        self.problems[rel] = text

    def refresh(self, rels: set[str] | None = None) -> None:
        """Reload records (statuses) from the store, keeping the same image set; annotated
        images whose file is gone stay listed (a folder's project), so their masks are not
        forgotten."""
        wanted = set(rels if rels is not None else {r.rel_path for r in self.records})
        listed = self.store.list_images()
        if self.only is None:
            wanted |= {r.rel_path for r in listed if r.latest_version is not None}
        known = {r.rel_path: r for r in listed if r.rel_path in wanted}
        missing = sorted(wanted - set(known))  # read-only store that never saw these files
        extra = [ImageRecord(-1, rel, "new", None, None) for rel in missing]
        self.records = sort_records([*known.values(), *extra], self.qualities, self.sort_mode)

    def sort(self, mode: str) -> None:
        """Re-order the records (the window's next/previous follow the shown order)."""
        self.records = sort_records(self.records, self.qualities, mode)
        self.sort_mode = mode

    def index_of(self, rel_path: str) -> int | None:
        return next((i for i, r in enumerate(self.records) if r.rel_path == rel_path), None)

    def path(self, index: int) -> Path:
        return self.root / self.records[index].rel_path

    def counts(self) -> dict[str, int]:
        counts = {"new": 0, "model": 0, "corrected": 0, "skipped": 0}
        for r in self.records:
            counts[r.status] = counts.get(r.status, 0) + 1
        counts["total"] = len(self.records)
        counts["done"] = counts["corrected"] + counts["skipped"]
        return counts

    def set_status(self, index: int, status: str) -> None:
        rel = self.records[index].rel_path
        self.store.set_status(rel, status)
        self._update(index, status)

    def _update(self, index: int, status: str, version: int | None = None) -> None:
        old = self.records[index]
        self.records[index] = ImageRecord(
            old.id, old.rel_path, status, old.updated, version if version is not None else old.latest_version
        )

    def latest(self, index: int) -> Annotation | None:
        return self.store.latest_annotation(self.records[index].rel_path)

    def save(self, index: int, masks: dict, kind: str, model: tuple[str | None, str | None], prompts: dict,
             image_content: tuple[str, int] | None = None) -> int:
        """A new version; ``image_content`` is (sha256, size) of the image the masks were drawn on."""
        version = self.store.save_annotation(
            self.records[index].rel_path, masks, kind, model_name=model[0], model_hash=model[1], prompts=prompts,
            image_content=image_content,
        )
        self.problems.pop(self.records[index].rel_path, None)
        self._update(index, kind, version)
        return version

    def export(self, out_dir: str | Path, kind: str | None = None,
               formats: tuple[str, ...] | list[str] = DEFAULT_FORMATS) -> dict[str, list[Path]]:
        """The chosen formats, each in its own folder (COCO: one JSON), and always the lung
        areas beside them (``measurements.csv``/``.json``, key "measurements"); ``notes`` (set
        on return) says why a chosen format wrote nothing, e.g. "source is not DICOM"."""
        out_dir = Path(out_dir)
        self.notes = {}
        writers = {"png": (export_png, "masks"), "nifti": (export_nifti, "nifti"),
                   "labelme": (export_labelme, "labelme"), "yolo": (export_yolo, "yolo")}
        written: dict[str, list[Path]] = {}
        for key in formats:
            if key in writers:
                function, folder = writers[key]
                written[key] = function(self.store, out_dir / folder, kind=kind)
            elif key == "coco":
                written[key] = [export_coco(self.store, out_dir / "annotations_coco.json", kind=kind)]
            elif key == "dicom_seg":
                written[key] = self._export_dicom_seg(out_dir, kind)
            else:
                raise LungSamError(f"unknown export format {key!r}; expected some of {list(EXPORT_FORMATS)}")
            if not written[key] and key not in self.notes:
                self.notes[key] = "no annotated images"
        written["measurements"] = export_measurements(self.store, out_dir, self.spacing, kind)
        return written

    def spacing(self, rel_path: str) -> PixelSpacing | None:
        """The pixel spacing of an image of the project, read from its header (DICOM only)."""
        return read_pixel_spacing(self.root / rel_path)

    def _export_dicom_seg(self, out_dir: Path, kind: str | None) -> list[Path]:
        written, annotated = [], 0
        for record, annotation in self.store.latest_annotations(kind):
            if self.only is not None and record.rel_path not in self.only:
                continue
            annotated += 1
            source = self.root / record.rel_path
            if not _is_dicom(source):
                continue
            stem = Path(record.rel_path).with_suffix("")
            target = out_dir / "dicom_seg" / f"{stem}_seg.dcm"
            written.append(export_dicom_seg(annotation, source, target))
        if annotated and not written:
            self.notes["dicom_seg"] = "source is not DICOM"
        return written

    def remember(self, index: int) -> None:
        """Note the image being viewed, so reopening the folder returns to it."""
        if self.read_only:
            return
        state = json.dumps({"last_image": self.records[index].rel_path}).encode()
        try:
            atomic_write_bytes(self.store.dir / GUI_STATE, state)
        except OSError:
            pass  # a convenience only

    def last_image(self) -> int | None:
        try:
            rel = json.loads((self.store.dir / GUI_STATE).read_text()).get("last_image")
        except (OSError, ValueError, AttributeError):
            return None
        return next((i for i, r in enumerate(self.records) if r.rel_path == rel), None)

    def close(self) -> None:
        self.store.close()


def _is_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


__all__ = ["DEFAULT_FORMATS", "EXPORT_FORMATS", "Project", "common_root", "scan_folder"]
