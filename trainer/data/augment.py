"""Augmentation: how other sites export radiographs, and small changes of pose.

Two parts. :func:`export_artifacts` (uint8, OpenCV, per image) imitates what differs between
hospitals' exports and what a model must ignore: JPEG compression, burnt-in text, arrows and
film markers, local-contrast processing (CLAHE), sensor noise. :func:`augment_batch` (torch,
on whole batches, also on a GPU) applies a small affine (rotation, scale, shift, sometimes a
zoom-out that leaves a black film border) identically to images and lung label maps, then
gamma, contrast and brightness, each drawn independently over the range a washed-out or dark
export spans (gamma 0.5-2, contrast x0.5-1.5, brightness +-60 grey levels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    rotate_deg: float = 8.0
    scale: float = 0.08
    shift: float = 0.05
    probability: float = 0.8  # of the affine
    zoom_out: float = 0.2  # probability of shrinking into a black border ...
    zoom_out_max: float = 0.3  # ... of up to this fraction of the side
    gamma: float = 0.75  # log-gamma range: exp(+-0.75) = 0.47..2.1
    contrast_low: float = 0.5
    contrast_high: float = 1.5
    brightness: float = 60.0
    intensity_p: float = 0.5  # each of gamma, contrast, brightness independently
    jpeg_p: float = 0.25
    jpeg_quality: tuple[int, int] = (15, 70)
    text_p: float = 0.3
    clahe_p: float = 0.15
    noise_p: float = 0.2
    noise_sigma: float = 8.0


_WORDS = ("L", "R", "AP", "PA", "PORTABLE", "SUPINE", "ERECT", "12/03/2020", "Day 5", "A", "B", "C",
          "1", "2", "3", "Fig. 2", "x-ray", "08:41", "CHEST")


def _u(gen: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=gen))


def _burn_in(img: np.ndarray, h: int, w: int, gen: torch.Generator) -> None:
    """Text, arrows and square film markers drawn into ``img`` (in place), bright or dark."""
    for _ in range(1 + int(_u(gen) * 3)):
        shade = int(_u(gen, 200, 256)) if _u(gen) < 0.8 else int(_u(gen, 0, 40))
        x, y = int(_u(gen) * w), int(_u(gen) * h)
        kind = _u(gen)
        if kind < 0.6:
            word = _WORDS[int(_u(gen) * len(_WORDS))]
            cv2.putText(img, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, _u(gen, 0.3, 1.0),
                        (shade,) * 3, 1 + int(_u(gen) * 2), cv2.LINE_AA)
        elif kind < 0.85:
            length = _u(gen, 0.05, 0.2) * w
            angle = _u(gen, 0, 2 * math.pi)
            tip = (int(x + length * math.cos(angle)), int(y + length * math.sin(angle)))
            cv2.arrowedLine(img, (x, y), tip, (shade,) * 3, 1 + int(_u(gen) * 2), cv2.LINE_AA, tipLength=0.3)
        else:
            side = int(_u(gen, 0.02, 0.06) * w) + 1
            cv2.rectangle(img, (x, y), (x + side, y + side), (shade,) * 3, -1)


def export_artifacts(images: np.ndarray, limits: np.ndarray, cfg: AugmentConfig,
                     generator: torch.Generator) -> np.ndarray:
    """B x S x S x 3 uint8 (grey replicated) -> copies with site-export artefacts inside each
    image's region ``limits`` (B x 2: h, w). Lung labels are unchanged: text over a lung is
    still lung. Every draw comes from ``generator``, so a run replays."""
    out = np.array(images, copy=True)
    clahe = None
    for i in range(len(out)):
        h, w = (int(v) for v in limits[i])
        img = np.ascontiguousarray(out[i, :h, :w])
        if _u(generator) < cfg.text_p:
            _burn_in(img, h, w, generator)
        if _u(generator) < cfg.clahe_p:
            clahe = clahe or cv2.createCLAHE(clipLimit=_u(generator, 1.5, 4.0), tileGridSize=(8, 8))
            img[:] = clahe.apply(img[:, :, 0])[:, :, None]
        if _u(generator) < cfg.noise_p:
            noise = torch.randn(h, w, generator=generator).numpy() * _u(generator, 1.0, cfg.noise_sigma)
            img[:] = np.clip(img[:, :, :1] + noise[:, :, None], 0, 255).astype(np.uint8)
        if _u(generator) < cfg.jpeg_p:
            quality = int(_u(generator, *cfg.jpeg_quality))
            ok, enc = cv2.imencode(".jpg", img[:, :, 0], [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                img[:] = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE)[:, :, None]
        out[i, :h, :w] = img
    return out


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
    zoom = 1 + (rnd(b) < cfg.zoom_out) * rnd(b) * cfg.zoom_out_max * 2  # grid scale > 1 = smaller image
    scale = (1 + (rnd(b) * 2 - 1) * cfg.scale * apply) / zoom
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
    on = lambda: (rnd(b) < cfg.intensity_p).float()  # noqa: E731
    gamma = torch.exp((rnd(b) * 2 - 1) * cfg.gamma * on()).view(b, 1, 1, 1)
    log_c = math.log(cfg.contrast_low) + rnd(b) * (math.log(cfg.contrast_high) - math.log(cfg.contrast_low))
    contrast = torch.exp(log_c * on()).view(b, 1, 1, 1)
    bright = ((rnd(b) * 2 - 1) * cfg.brightness * on()).view(b, 1, 1, 1)
    images = 255.0 * (images.clamp(0, 255) / 255.0) ** gamma
    images = ((images - 128.0) * contrast + 128.0 + bright).clamp(0, 255)
    return images, labels
