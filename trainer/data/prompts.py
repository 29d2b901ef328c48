"""Box prompts from lung label maps: both lungs and each lung, jittered outward in training."""

from __future__ import annotations

import numpy as np
import torch

from engine.measure import tight_box
from trainer.data.lung_labels import IMAGE_LEFT, IMAGE_RIGHT

PROMPT_KINDS = ("union", "image_left", "image_right")


def _target(labels: np.ndarray, kind: str) -> np.ndarray:
    if kind == "union":
        return labels > 0
    return labels == (IMAGE_LEFT if kind == "image_left" else IMAGE_RIGHT)


def batch_prompts(
    labels: torch.Tensor,
    kinds: tuple[str, ...] = PROMPT_KINDS,
    jitter_px: float = 0.0,
    generator: torch.Generator | None = None,
    limits: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Boxes N x 4, image index N, target masks N x S x S (float) and kind per prompt.

    Each side of a box moves outward by a uniform 0..``jitter_px`` (0 for evaluation), then
    is clipped to the image region ``limits`` (B x 2: h, w; default the whole square).
    """
    lab = labels.cpu().numpy()
    height, width = lab.shape[-2:]
    boxes, index, targets, used = [], [], [], []
    for i in range(lab.shape[0]):
        h, w = limits[i] if limits is not None else (height, width)
        for kind in kinds:
            tgt = _target(lab[i], kind)
            box = tight_box(tgt)
            if box is None:
                continue
            if jitter_px > 0:
                j = torch.rand(4, generator=generator).numpy() * jitter_px
                box = box + np.array([-j[0], -j[1], j[2], j[3]])
            box = np.clip(box, 0, [w, h, w, h])
            boxes.append(box)
            index.append(i)
            targets.append(tgt)
            used.append(kind)
    return (
        torch.as_tensor(np.asarray(boxes), dtype=torch.float32).reshape(-1, 4),
        torch.as_tensor(index, dtype=torch.long),
        torch.as_tensor(np.asarray(targets), dtype=torch.float32).reshape(-1, height, width),
        used,
    )
