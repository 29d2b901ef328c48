"""The measurements every export writes beside the masks: ``measurements.csv`` and
``measurements.json``, one row per annotated image (:data:`engine.measure.MEASUREMENT_COLUMNS`:
name, left_area, right_area, both_area, area_unit, spacing_source, row_mm, col_mm).

Where the spacing comes from: the caller passes ``spacing_of(rel_path)``. The store does not
record it, by choice. It may not decode images (an import contract) and so could only store
what a window happened to read when it opened an image: images annotated before this existed
or saved through the store by a script (``lungsam segment --auto`` later) would have none, and
the store's schema would grow a column for a fact the image file already holds.
The app reads it from each file's header when it exports
(:func:`engine.imaging.read_pixel_spacing`: DICOM header only, no pixels decoded), so the
numbers always follow the file as it is. Without ``spacing_of`` every area is in px².

Sides are the patient's, like the labels: "left lung" -> ``left_area``. An image drawn as one
"lungs" label has blank left/right areas and its ``both_area``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engine.measure import MEASUREMENT_COLUMNS, LungAreas, lung_areas
from engine.project.annotations import Annotation
from engine.project.export import annotations_of, write_export
from engine.project.store import ProjectStore
from engine.spacing import PixelSpacing

CSV_NAME = "measurements.csv"
JSON_NAME = "measurements.json"
CONVENTION = (
    "left/right are the patient's lungs (on a PA/AP radiograph the left lung is on the image's "
    "right); both_area is the area of the union of all masks. cm² come from the pixel spacing: "
    "'calibrated' = DICOM PixelSpacing, 'corrected' = ImagerPixelSpacing divided by "
    "EstimatedRadiographicMagnificationFactor, 'at detector' = ImagerPixelSpacing alone "
    "(overstates the anatomy by the magnification squared); px² when no spacing is known."
)

SpacingOf = Callable[[str], PixelSpacing | None]


def label_areas(masks: Mapping[str, np.ndarray], spacing: PixelSpacing | None) -> LungAreas:
    """Areas of one image's label masks ('left lung', 'right lung', 'lungs'; any missing)."""
    return lung_areas(masks.get("left lung"), masks.get("right lung"), spacing, masks.get("lungs"))


def measurement_rows(
    source: ProjectStore | Annotation | Iterable[Annotation],
    spacing_of: SpacingOf | None = None,
    kind: str | None = None,
) -> list[dict[str, Any]]:
    """One row per annotation with masks (a store: its newest of ``kind`` per image), named by
    the image's path relative to the project."""
    items, _ = annotations_of(source, kind)
    rows = []
    for ann in items:
        if not ann.masks:
            continue
        spacing = spacing_of(ann.image_rel_path) if spacing_of is not None else None
        rows.append(label_areas(ann.masks, spacing).row(ann.image_rel_path))
    return rows


def write_measurements(rows: Iterable[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """``measurements.csv`` (empty cell for an unknown value) and ``measurements.json``
    (``{"columns", "convention", "images": [row, ...]}``, null for unknown) in ``out_dir``,
    each written atomically; returns both paths."""
    out_dir = Path(out_dir)
    rows = [{column: row.get(column) for column in MEASUREMENT_COLUMNS} for row in rows]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=MEASUREMENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    document = {"columns": list(MEASUREMENT_COLUMNS), "convention": CONVENTION, "images": rows}
    paths = [out_dir / CSV_NAME, out_dir / JSON_NAME]
    contents = [text.getvalue(), json.dumps(document, ensure_ascii=False, indent=1) + "\n"]
    for path, content in zip(paths, contents, strict=True):
        write_export(path, lambda p, c=content: p.write_text(c, encoding="utf-8"))
    return paths


def export_measurements(
    source: ProjectStore | Annotation | Iterable[Annotation],
    out_dir: str | Path,
    spacing_of: SpacingOf | None = None,
    kind: str | None = None,
) -> list[Path]:
    """:func:`measurement_rows` written by :func:`write_measurements` into ``out_dir``."""
    return write_measurements(measurement_rows(source, spacing_of, kind), out_dir)


__all__ = [
    "CSV_NAME",
    "JSON_NAME",
    "export_measurements",
    "label_areas",
    "measurement_rows",
    "write_measurements",
]
