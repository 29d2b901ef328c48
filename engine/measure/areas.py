"""Lung areas from masks: each lung and both, in cm² when the pixel spacing is known, else px².

Sides are the PATIENT's, as the project's labels are ("left lung" is the patient's left): on a
PA/AP chest radiograph shown in the standard orientation the patient's left lung is on the
image's RIGHT. :func:`lung_areas` takes the masks by anatomy; :func:`lung_areas_by_image_side`
takes them by where they lie in the image (what a split of a both-lungs mask by columns
gives) and does the swap in one place.

An area is the number of mask pixels times the area of one pixel (``row_mm * col_mm``), so it
is the area in the plane the spacing refers to: at the detector, or at the patient for a
calibrated or magnification-corrected spacing (:mod:`engine.spacing`). "Both" is the area of
the union of the masks, not the sum, so a pixel claimed by two labels counts once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from engine.spacing import PixelSpacing

AreaUnit = Literal["cm²", "px²"]
CM2: AreaUnit = "cm²"
PX2: AreaUnit = "px²"
MM2_PER_CM2 = 100.0

MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "name", "left_area", "right_area", "both_area", "area_unit", "spacing_source", "row_mm", "col_mm",
)
"""The columns of one image's measurements (exports' measurements.csv/json, CLI reports)."""


@dataclass(frozen=True)
class LungAreas:
    """Areas of the patient's ``left`` and ``right`` lung (None: that lung was not drawn on its
    own) and of ``both`` (the union of every mask given), in ``unit``; ``spacing`` is what
    turned pixels into cm² (None for px²)."""

    left: float | None
    right: float | None
    both: float
    unit: AreaUnit
    spacing: PixelSpacing | None

    @property
    def spacing_source(self) -> str | None:
        """'calibrated', 'corrected' or 'at detector'; None when areas are in pixels."""
        return self.spacing.source if self.spacing is not None else None

    @property
    def text(self) -> str:
        """One line for people: 'left 142.3 cm² · right 161.0 cm² · both 303.3 cm² (spacing at
        detector)'; a lung not drawn on its own is left out."""
        parts = [
            f"{side} {format_area(value, self.unit)}"
            for side, value in (("left", self.left), ("right", self.right), ("both", self.both))
            if value is not None
        ]
        return " · ".join(parts) + f" ({spacing_note(self.spacing)})"

    def row(self, name: str) -> dict[str, Any]:
        """:data:`MEASUREMENT_COLUMNS` for one image: cm² to 0.01 (1 mm²), px² as integers,
        spacing to 1e-6 mm, None where a value is unknown (an empty CSV cell, JSON null)."""
        spacing = self.spacing
        return {
            "name": name,
            "left_area": _rounded(self.left, self.unit),
            "right_area": _rounded(self.right, self.unit),
            "both_area": _rounded(self.both, self.unit),
            "area_unit": self.unit,
            "spacing_source": self.spacing_source,
            "row_mm": round(spacing.row_mm, 6) if spacing is not None else None,
            "col_mm": round(spacing.col_mm, 6) if spacing is not None else None,
        }


def lung_areas(
    left_mask: np.ndarray | None,
    right_mask: np.ndarray | None,
    spacing: PixelSpacing | None,
    lungs_mask: np.ndarray | None = None,
) -> LungAreas:
    """Areas of the patient's left and right lung and of both (bool/0-1 HxW masks, one image
    frame). ``lungs_mask`` is a both-lungs mask drawn as one label; it counts towards ``both``
    only. A mask that is None was not drawn; with no spacing the areas are in px²."""
    masks = [m for m in (left_mask, right_mask, lungs_mask) if m is not None]
    shapes = {np.shape(m) for m in masks}
    if len(shapes) > 1:
        raise ValueError(f"the lung masks differ in size: {sorted(shapes)}")
    if masks:
        union = np.zeros(np.shape(masks[0]), dtype=bool)
        for mask in masks:
            union |= np.asarray(mask, dtype=bool)
        both = int(np.count_nonzero(union))
    else:
        both = 0
    scale = 1.0 if spacing is None else spacing.pixel_area_mm2 / MM2_PER_CM2
    unit = PX2 if spacing is None else CM2

    def area(mask: np.ndarray | None) -> float | None:
        return None if mask is None else np.count_nonzero(mask) * scale

    return LungAreas(area(left_mask), area(right_mask), both * scale, unit, spacing)


def lung_areas_by_image_side(
    image_left_mask: np.ndarray | None,
    image_right_mask: np.ndarray | None,
    spacing: PixelSpacing | None,
) -> LungAreas:
    """:func:`lung_areas` for masks named by image side (columns as stored, PA/AP view): the
    lung on the image's LEFT is the patient's RIGHT lung, and the other way round."""
    return lung_areas(left_mask=image_right_mask, right_mask=image_left_mask, spacing=spacing)


def format_area(value: float, unit: AreaUnit) -> str:
    """'142.3 cm²' (0.1 cm² is 10 mm², finer than any lung outline) or '35,210 px²'."""
    return f"{value:.1f} {unit}" if unit == CM2 else f"{round(value):,} {unit}"


def spacing_note(spacing: PixelSpacing | None) -> str:
    """How the areas were scaled, in words: 'spacing at detector', 'no pixel spacing', ..."""
    if spacing is None:
        return "no pixel spacing"
    if spacing.source == "corrected" and spacing.magnification is not None:
        return f"spacing corrected for magnification {spacing.magnification:g}"
    return f"spacing {spacing.source}"


def _rounded(value: float | None, unit: AreaUnit) -> float | int | None:
    if value is None:
        return None
    return round(value, 2) if unit == CM2 else int(round(value))
