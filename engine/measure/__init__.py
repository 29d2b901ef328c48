"""Measurements on lung masks: areas of each lung and of both (:mod:`~engine.measure.areas`),
in cm² from a :class:`~engine.spacing.PixelSpacing`, else in px²; a mask's tight box
(:mod:`~engine.measure.extent`).

Arithmetic on masks only: no decoding, no store, no model (a ``lint-imports`` contract), so
the GUI's labels panel, the project exports and ``lungsam segment`` all measure the same way.
"""

from engine.measure.areas import (
    CM2,
    MEASUREMENT_COLUMNS,
    PX2,
    AreaUnit,
    LungAreas,
    format_area,
    lung_areas,
    lung_areas_by_image_side,
    spacing_note,
)
from engine.measure.extent import tight_box

__all__ = [
    "AreaUnit",
    "CM2",
    "LungAreas",
    "MEASUREMENT_COLUMNS",
    "PX2",
    "format_area",
    "lung_areas",
    "lung_areas_by_image_side",
    "spacing_note",
    "tight_box",
]
