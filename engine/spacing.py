"""The physical size of a pixel and where that size came from.

Shared by image loading (:mod:`engine.imaging`, which reads it from the file), measurement
(:mod:`engine.measure`, which turns pixel counts into cm²) and the project exports
(:mod:`engine.project`, which may not decode images but writes the spacing it is given), so
it lives beside ``errors.py`` rather than in any one of them.

Spacing is in millimetres in the image frame: ``row_mm`` is the distance between the centres
of adjacent rows (vertical), ``col_mm`` between adjacent columns (horizontal), the order of
DICOM's PixelSpacing (0028,0030). One pixel covers ``row_mm * col_mm`` mm².
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

SpacingSource = Literal["calibrated", "corrected", "at detector"]

CALIBRATED: SpacingSource = "calibrated"
"""PixelSpacing: the spacing in the patient (anatomy) plane as the modality states it."""
CORRECTED: SpacingSource = "corrected"
"""ImagerPixelSpacing divided by EstimatedRadiographicMagnificationFactor: the detector
spacing projected back to the patient plane with the modality's own magnification estimate."""
AT_DETECTOR: SpacingSource = "at detector"
"""ImagerPixelSpacing alone: the spacing at the detector face. A projection radiograph
magnifies the patient (source-detector over source-object distance, about 1.1 for a PA
chest and up to 1.3 at the bedside), so areas from it overstate the anatomy by that factor squared."""
SOURCES: tuple[SpacingSource, ...] = (CALIBRATED, CORRECTED, AT_DETECTOR)


@dataclass(frozen=True)
class PixelSpacing:
    """(row mm, col mm) of one pixel, its provenance (``source``) and, for ``corrected``, the
    magnification factor that was divided out."""

    row_mm: float
    col_mm: float
    source: SpacingSource
    magnification: float | None = None

    def __post_init__(self) -> None:
        for value in (self.row_mm, self.col_mm):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"pixel spacing must be positive and finite, got {value!r}")
        if self.source not in SOURCES:
            raise ValueError(f"unknown pixel spacing source {self.source!r}; expected one of {SOURCES}")

    @property
    def pair(self) -> tuple[float, float]:
        """(row mm, col mm), the form ``LoadedImage.pixel_spacing`` and HD95 take."""
        return (self.row_mm, self.col_mm)

    @property
    def pixel_area_mm2(self) -> float:
        return self.row_mm * self.col_mm


__all__ = ["AT_DETECTOR", "CALIBRATED", "CORRECTED", "SOURCES", "PixelSpacing", "SpacingSource"]
