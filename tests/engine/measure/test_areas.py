"""Lung areas: pixel counts times the pixel's area, the union for both, the patient's sides."""

from __future__ import annotations

import numpy as np
import pytest

from engine.measure import MEASUREMENT_COLUMNS, lung_areas, lung_areas_by_image_side
from engine.spacing import PixelSpacing

DETECTOR = PixelSpacing(0.2, 0.2, "at detector")


def square(shape=(300, 400), rows=slice(0, 100), cols=slice(0, 100)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    return mask


def test_100_by_100_pixels_at_0_2_mm_is_4_cm2():
    areas = lung_areas(square(), None, DETECTOR)
    assert areas.left == pytest.approx(4.0) and areas.unit == "cm²"
    assert areas.right is None and areas.both == pytest.approx(4.0)


def test_anisotropic_spacing_multiplies_row_by_column():
    areas = lung_areas(square(), square(cols=slice(200, 250)), PixelSpacing(0.1, 0.3, "calibrated"))
    assert areas.left == pytest.approx(100 * 100 * 0.03 / 100)  # 3 cm²
    assert areas.right == pytest.approx(100 * 50 * 0.03 / 100)
    assert areas.both == pytest.approx(4.5)


def test_without_spacing_areas_are_pixels():
    areas = lung_areas(square(), square(cols=slice(200, 230)), None)
    assert (areas.left, areas.right, areas.both, areas.unit) == (10_000, 3_000, 13_000, "px²")
    assert areas.spacing_source is None
    assert areas.text == "left 10,000 px² · right 3,000 px² · both 13,000 px² (no pixel spacing)"


def test_both_is_the_union_not_the_sum():
    left = square(cols=slice(0, 100))
    right = square(cols=slice(50, 150))  # 50 columns shared
    lungs = square(cols=slice(140, 160))  # one label for both, partly over the right lung
    areas = lung_areas(left, right, None, lungs_mask=lungs)
    assert areas.both == np.count_nonzero(left | right | lungs) == 100 * 160
    assert areas.left + areas.right > areas.both


def test_the_lung_on_the_image_right_is_the_patients_left():
    image_left = square(cols=slice(0, 100))  # 10,000 px
    image_right = square(cols=slice(250, 400))  # 15,000 px
    areas = lung_areas_by_image_side(image_left, image_right, None)
    assert areas.left == 15_000 and areas.right == 10_000


def test_display_text_names_unit_and_spacing_source():
    areas = lung_areas(square(cols=slice(0, 100)), square(cols=slice(200, 300), rows=slice(0, 120)), DETECTOR)
    assert areas.text == "left 4.0 cm² · right 4.8 cm² · both 8.8 cm² (spacing at detector)"
    corrected = PixelSpacing(0.2 / 1.25, 0.2 / 1.25, "corrected", magnification=1.25)
    assert lung_areas(None, None, corrected, lungs_mask=square()).text == (
        "both 2.6 cm² (spacing corrected for magnification 1.25)"
    )


def test_the_row_has_the_export_columns():
    row = lung_areas(square(), None, PixelSpacing(0.139, 0.143, "calibrated")).row("sub/a.dcm")
    assert tuple(row) == MEASUREMENT_COLUMNS
    assert row == {"name": "sub/a.dcm", "left_area": 1.99, "right_area": None, "both_area": 1.99,
                   "area_unit": "cm²", "spacing_source": "calibrated", "row_mm": 0.139, "col_mm": 0.143}
    assert lung_areas(None, square(), None).row("b.png")["right_area"] == 10_000


def test_masks_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="differ in size"):
        lung_areas(square((10, 10)), square((10, 12)), None)
