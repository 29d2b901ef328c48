"""Site-export augmentation (trainer.data.augment) and the robustness perturbations (trainer.evaluation.perturb)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.data.augment import AugmentConfig, augment_batch, export_artifacts
from trainer.evaluation.perturb import PERTURBATIONS


def _batch(n=4, size=64):
    rng = np.random.default_rng(0)
    grey = (rng.random((n, size, size)) * 120 + 60).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=3)


def test_export_artifacts_replay_with_the_same_generator_and_change_pixels():
    images = _batch()
    limits = np.array([[64, 64], [64, 48], [40, 64], [64, 64]])
    cfg = AugmentConfig(text_p=1.0, jpeg_p=1.0, noise_p=1.0, clahe_p=1.0)
    a = export_artifacts(images, limits, cfg, torch.Generator().manual_seed(3))
    b = export_artifacts(images, limits, cfg, torch.Generator().manual_seed(3))
    assert np.array_equal(a, b) and not np.array_equal(a, images)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()  # still grey
    assert np.array_equal(a[1, :, 48:], images[1, :, 48:])  # the padding stays untouched
    assert np.array_equal(a[2, 40:], images[2, 40:])


def test_intensity_ranges_reach_washed_out_and_dark_exports():
    images = torch.full((256, 3, 8, 8), 128.0)
    labels = torch.zeros(256, 8, 8, dtype=torch.long)
    cfg = AugmentConfig(probability=0.0, zoom_out=0.0, intensity_p=1.0)
    out, _ = augment_batch(images, labels, cfg, torch.Generator().manual_seed(0))
    means = out.mean(dim=(1, 2, 3))
    assert means.max() > 185 and means.min() < 75


def test_zoom_out_leaves_a_black_border_and_shrinks_the_lungs_with_it():
    images = torch.full((2, 3, 64, 64), 200.0)
    labels = torch.ones(2, 64, 64, dtype=torch.long)
    cfg = AugmentConfig(probability=0.0, zoom_out=1.0, intensity_p=0.0)
    out, lab = augment_batch(images, labels, cfg, torch.Generator().manual_seed(1))
    assert (out[:, :, 0, :] == 0).all() and (lab[:, 0, :] == 0).all()
    assert ((out[:, 0] > 100) != (lab > 0)).float().mean() < 0.02  # image and lungs shrink together


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_perturbations_keep_the_lungs_where_they_are_except_the_border(name):
    image = _batch(1, 80)[0, :, :, 0]
    mask = np.zeros((80, 80), bool)
    mask[20:60, 10:70] = True
    out, out_mask = PERTURBATIONS[name](image, mask)
    assert out.dtype == np.uint8
    if name == "12% black border":
        assert out.shape == (80 + 2 * 10, 80 + 2 * 10) and out_mask.sum() == mask.sum()
        assert (out[:10] == 0).all() and out_mask[30:70, 20:80].all()
    else:
        assert out.shape == image.shape and np.array_equal(out_mask, mask)
        assert not np.array_equal(out, image)
