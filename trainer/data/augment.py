"""Light augmentation on whole batches (torch), so two CPU cores are not spent in Python loops.

Small affine (rotation, scale, shift) applied identically to images and lung label maps,
then intensity changes (gamma, contrast, brightness) on the images only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    rotate_deg: float = 8.0
    scale: float = 0.08
    shift: float = 0.05
    gamma: float = 0.25
    contrast: float = 0.15
    brightness: float = 12.0
    probability: float = 0.8


def augment_batch(
    images: torch.Tensor, labels: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """images B x 3 x S x S float (0-255), labels B x S x S long -> augmented copies.

    The random draws come from ``generator`` on the CPU (so a run replays the same way on any
    device); the pixel work runs where ``images`` are, a GPU included.
    """
    b = images.shape[0]
    rnd = lambda *shape: torch.rand(*shape, generator=generator).to(images.device)  # noqa: E731
    apply = rnd(b) < cfg.probability
    angle = (rnd(b) * 2 - 1) * math.radians(cfg.rotate_deg) * apply
    scale = 1 + (rnd(b) * 2 - 1) * cfg.scale * apply
    shift = (rnd(b, 2) * 2 - 1) * cfg.shift * 2 * apply[:, None]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    labels = (
        F.grid_sample(labels[:, None].float(), grid, mode="nearest", align_corners=False)[:, 0].long()
    )
    gamma = torch.exp((rnd(b) * 2 - 1) * cfg.gamma * apply).view(b, 1, 1, 1)
    contrast = (1 + (rnd(b) * 2 - 1) * cfg.contrast * apply).view(b, 1, 1, 1)
    bright = ((rnd(b) * 2 - 1) * cfg.brightness * apply).view(b, 1, 1, 1)
    images = 255.0 * (images.clamp(0, 255) / 255.0) ** gamma
    images = ((images - 128.0) * contrast + 128.0 + bright).clamp(0, 255)
    return images, labels
