"""Training and evaluation data: image/mask pairs from folders or a project's corrected
masks, decoded with the engine's own preprocessing (:mod:`~trainer.data.datasets`), the lung
split and labels (:mod:`~trainer.data.lung_labels`), prompts sampled from masks
(:mod:`~trainer.data.prompts`), augmentation (:mod:`~trainer.data.augment`) and data drawn in
a second mask style (:mod:`~trainer.data.styles`).
"""

from trainer.data.augment import AugmentConfig, augment_batch, export_artifacts
from trainer.data.clicks import Click, corrective_click, region_points
from trainer.data.datasets import (
    Pair,
    SampleSet,
    concat_sets,
    find_pairs,
    load_set,
    patient_key,
    project_pairs,
    read_mask,
    sample_pairs,
    split_pairs,
)
from trainer.data.lung_labels import IMAGE_LEFT, IMAGE_RIGHT, box_of, labels_from_masks, split_lungs
from trainer.data.prompts import batch_prompts, tight_box
from trainer.data.styles import apply_style_names, parse_style_source, style_sets, token_of

__all__ = [
    "Click",
    "corrective_click",
    "region_points",
    "AugmentConfig",
    "IMAGE_LEFT",
    "IMAGE_RIGHT",
    "Pair",
    "SampleSet",
    "apply_style_names",
    "augment_batch",
    "export_artifacts",
    "batch_prompts",
    "box_of",
    "concat_sets",
    "find_pairs",
    "labels_from_masks",
    "load_set",
    "parse_style_source",
    "patient_key",
    "project_pairs",
    "read_mask",
    "split_lungs",
    "sample_pairs",
    "split_pairs",
    "style_sets",
    "tight_box",
    "token_of",
]
