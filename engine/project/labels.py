"""The annotation vocabulary shared by the store, the exports, the GUI and the trainer."""

from __future__ import annotations

LABELS = ("lungs", "right lung", "left lung")
"""Anatomical labels: the PATIENT's right/left, so the left lung is on the image's right."""
STATUSES = ("new", "model", "corrected", "skipped")
KINDS = ("model", "corrected")
"""``model``: raw model output; ``corrected``: the clinician's final mask (trained on)."""
