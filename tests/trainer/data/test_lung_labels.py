"""Lung split and prompts: image-left / image-right lungs and the patient-side convention."""

from __future__ import annotations

import numpy as np
import torch

from trainer.data import (
    IMAGE_LEFT,
    IMAGE_RIGHT,
    batch_prompts,
    labels_from_masks,
    split_lungs,
    tight_box,
)


def two_lungs(h=60, w=80, touching=False):
    m = np.zeros((h, w), np.uint8)
    m[10:50, 8:35] = 1
    m[12:52, 45:72] = 1
    if touching:
        m[30:34, 35:45] = 1
    return m


def test_two_components_split_by_side():
    labels = split_lungs(two_lungs())
    assert (labels[10:50, 8:35] == IMAGE_LEFT).all()
    assert (labels[12:52, 45:72] == IMAGE_RIGHT).all()


def test_touching_lungs_are_cut_between_them():
    labels = split_lungs(two_lungs(touching=True))
    assert (labels[20, 8:35] == IMAGE_LEFT).all() and (labels[20, 45:72] == IMAGE_RIGHT).all()
    assert set(np.unique(labels)) == {0, IMAGE_LEFT, IMAGE_RIGHT}


def test_small_fragment_joins_the_lung_on_its_side():
    m = two_lungs()
    m[55:58, 60:63] = 1
    assert (split_lungs(m)[55:58, 60:63] == IMAGE_RIGHT).all()


def test_patient_left_mask_becomes_image_right_label():
    union = two_lungs()
    patient_left = np.zeros_like(union)
    patient_left[12:52, 45:72] = 1  # drawn on the image's right
    patient_right = union - patient_left
    labels = labels_from_masks(union, patient_left, patient_right)
    assert (labels[12:52, 45:72] == IMAGE_RIGHT).all() and (labels[10:50, 8:35] == IMAGE_LEFT).all()


def test_tight_box_uses_exclusive_far_edges():
    m = np.zeros((10, 10), bool)
    m[2:5, 3:7] = True
    assert tight_box(m).tolist() == [3, 2, 7, 5]


def test_eval_prompts_have_no_jitter_and_training_prompts_grow_outward():
    labels = torch.as_tensor(split_lungs(two_lungs()))[None].long()
    boxes, index, targets, kinds = batch_prompts(labels)
    assert kinds == ["union", "image_left", "image_right"] and index.tolist() == [0, 0, 0]
    assert boxes[0].tolist() == [8, 10, 72, 52]
    assert targets[1].sum() == 40 * 27
    gen = torch.Generator().manual_seed(0)
    jittered, *_ = batch_prompts(labels, jitter_px=20, generator=gen)
    assert (jittered[:, :2] <= boxes[:, :2]).all() and (jittered[:, 2:] >= boxes[:, 2:]).all()
    assert (jittered[:, 2] <= 80).all() and (jittered[:, 3] <= 60).all()
