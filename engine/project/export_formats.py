"""Exports machine-learning users ask for: NIfTI masks (nibabel), LabelMe JSON and YOLO-seg
polygons, each with a reader so the round trip is tested like PNG, COCO and DICOM-SEG.

Naming is the one scheme of :func:`engine.project.export.export_masks`: always the union
``NAME_lungs``, plus ``NAME_right_lung`` / ``NAME_left_lung`` when drawn per lung. Polygons
are outer contours (cv2, every boundary pixel kept) in pixel coordinates; YOLO writes them
normalised to 0..1 with class ids in ``LABELS`` order (``classes.txt`` names them).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from engine.project.export import annotations_of, export_masks, write_export
from engine.project.labels import LABELS
from engine.project.mask_png import label_slug
from engine.project.store import Annotation, ProjectStore

YOLO_CLASSES = "classes.txt"


def mask_polygons(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """Outer contours of a bool mask as (x, y) pixel lists (holes are not represented)."""
    contours, _ = cv2.findContours(np.ascontiguousarray(mask, np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [[(int(x), int(y)) for x, y in c[:, 0, :]] for c in contours]


def polygons_mask(polygons: list[list[tuple[float, float]]], shape: tuple[int, int]) -> np.ndarray:
    """The mask the polygons cover, boundary pixels included (inverse of mask_polygons)."""
    canvas = np.zeros(shape, np.uint8)
    for polygon in polygons:
        points = np.rint(np.asarray(polygon, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(canvas, [points], 1)
        cv2.polylines(canvas, [points], True, 1)
    return canvas.astype(bool)


# ----------------------------------------------------------------------------- NIfTI


def write_nifti(path: Path, mask: np.ndarray) -> None:
    """uint8 0/1 volume of shape (W, H, 1): NIfTI's first axis is x (columns)."""
    import nibabel as nib

    volume = np.ascontiguousarray(mask.T[:, :, None], dtype=np.uint8)
    image = nib.Nifti1Image(volume, np.eye(4))
    image.header.set_data_dtype(np.uint8)
    nib.save(image, str(path))


def read_nifti(path: str | Path) -> np.ndarray:
    import nibabel as nib

    return np.asarray(nib.load(str(path)).dataobj)[:, :, 0].T.astype(bool)  # type: ignore[attr-defined]  # nibabel: a NIfTI image has dataobj


# ----------------------------------------------------------------------------- LabelMe


def labelme_document(image_rel_path: str, masks: dict[str, np.ndarray]) -> dict:
    """LabelMe 5 JSON of one image: a polygon shape per contour, labelled with the lung."""
    height, width = next(iter(masks.values())).shape
    shapes: list[dict[str, object]] = [
        {"label": label, "points": [[x, y] for x, y in polygon], "group_id": None,
         "description": "", "shape_type": "polygon", "flags": {}}
        for label, mask in masks.items()
        for polygon in mask_polygons(mask)
        if len(polygon) >= 1
    ]
    return {"version": "5.4.1", "flags": {}, "shapes": shapes,
            "imagePath": PurePosixPath(image_rel_path).name, "imageData": None,
            "imageHeight": int(height), "imageWidth": int(width)}


def read_labelme(path: str | Path) -> dict[str, np.ndarray]:
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    shape = (int(document["imageHeight"]), int(document["imageWidth"]))
    polygons: dict[str, list] = {}
    for item in document["shapes"]:
        polygons.setdefault(item["label"], []).append(item["points"])
    return {label: polygons_mask(p, shape) for label, p in polygons.items()}


# ----------------------------------------------------------------------------- YOLO-seg


def yolo_lines(masks: dict[str, np.ndarray]) -> str:
    """Ultralytics segmentation labels: 'class x1 y1 x2 y2 ...' per polygon, normalised."""
    lines = []
    for label, mask in masks.items():
        height, width = mask.shape
        for polygon in mask_polygons(mask):
            coords = " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in polygon)
            lines.append(f"{LABELS.index(label)} {coords}")
    return "\n".join(lines) + ("\n" if lines else "")


def read_yolo(path: str | Path, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    height, width = shape
    polygons: dict[str, list] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        values = line.split()
        if not values:
            continue
        xy = np.asarray(values[1:], dtype=np.float64).reshape(-1, 2) * (width, height)
        polygons.setdefault(LABELS[int(values[0])], []).append(xy.tolist())
    return {label: polygons_mask(p, shape) for label, p in polygons.items()}


def yolo_classes() -> str:
    return "".join(f"{label_slug(label)}\n" for label in LABELS)


# ----------------------------------------------------------------------------- writers

Source = ProjectStore | Annotation


def _per_image(source: Source, out_dir: Path, kind: str | None):
    items, mirror = annotations_of(source, kind)
    for ann in items:
        masks = export_masks(ann)
        if masks:
            folder = out_dir / PurePosixPath(ann.image_rel_path).parent if mirror else out_dir
            yield ann, masks, folder, PurePosixPath(ann.image_rel_path).stem


def export_nifti(source: Source, out_dir: str | Path, kind: str | None = None) -> list[Path]:
    """``NAME_<label>.nii.gz`` per exported mask (0/1 uint8, one slice)."""
    written = []
    for _ann, masks, folder, stem in _per_image(source, Path(out_dir), kind):
        for label, mask in masks.items():
            path = folder / f"{stem}_{label_slug(label)}.nii.gz"
            write_export(path, lambda p, m=mask: _nifti_via(p, m))
            written.append(path)
    return written


def _nifti_via(tmp: Path, mask: np.ndarray) -> None:
    """nibabel picks compression from the name; write under .nii.gz, then move onto tmp."""
    named = tmp.with_name(tmp.name + ".nii.gz")
    write_nifti(named, mask)
    named.replace(tmp)


def export_labelme(source: Source, out_dir: str | Path, kind: str | None = None) -> list[Path]:
    """``NAME.json`` per image, LabelMe 5 polygons of every exported mask."""
    written = []
    for ann, masks, folder, stem in _per_image(source, Path(out_dir), kind):
        document = labelme_document(ann.image_rel_path, masks)
        path = folder / f"{stem}.json"
        write_export(path, lambda p, d=document: p.write_text(json.dumps(d), encoding="utf-8"))
        written.append(path)
    return written


def export_yolo(source: Source, out_dir: str | Path, kind: str | None = None) -> list[Path]:
    """``NAME.txt`` per image (YOLO-seg polygons) and ``classes.txt``."""
    out_dir = Path(out_dir)
    written = []
    for _ann, masks, folder, stem in _per_image(source, out_dir, kind):
        path, lines = folder / f"{stem}.txt", yolo_lines(masks)
        write_export(path, lambda p, text=lines: p.write_text(text, encoding="utf-8"))
        written.append(path)
    if written:
        classes = out_dir / YOLO_CLASSES
        write_export(classes, lambda p: p.write_text(yolo_classes(), encoding="utf-8"))
        written.append(classes)
    return written
