"""Interactive training, as SAM was trained: a box and/or points, then corrective clicks.

Each prompt starts as a (jittered) box or as positive points only (one per lung), is decoded,
and gets up to ``rounds`` simulated corrective clicks (:mod:`trainer.data.clicks`) sampled from
its current error, with the previous round's low-res logits fed back as SAM's mask prompt,
exactly as :class:`engine.predict.Predictor` sends them in use. Only the last round is
trained (the earlier ones run without gradients), so a step costs one encoder pass, one
trained decoder pass and ``rounds`` cheap decoder passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.sam import predict_prompts
from trainer.data import Click, corrective_click, region_points


@dataclass
class PromptBatch:
    """N prompts in the input frame: ``boxes`` N x 4 (ignored where ``has_box`` is False),
    ``points`` one click list per prompt, ``index`` N image indices, ``tokens`` N styles."""

    boxes: torch.Tensor
    has_box: np.ndarray
    points: list[list[Click]]
    index: torch.Tensor
    tokens: torch.Tensor


def _point_tensors(clicks: list[list[Click]], device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Pad click lists to one length with SAM's "not a point" label -1."""
    longest = max((len(c) for c in clicks), default=0)
    if longest == 0:
        return None
    coords = torch.zeros(len(clicks), longest, 2)
    labels = torch.full((len(clicks), longest), -1, dtype=torch.int)
    for i, row in enumerate(clicks):
        for j, (x, y, label) in enumerate(row):
            coords[i, j, 0], coords[i, j, 1], labels[i, j] = x, y, label
    return coords.to(device), labels.to(device)


def decode_batch(sam, features: torch.Tensor, batch: PromptBatch,
                 mask_input: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-res logits N x 1 x 4h x 4w and IoU N x 1; prompts with and without a box are
    decoded in two groups because SAM's token layout differs between them."""
    device = features.device
    n = len(batch.points)
    low = iou = None
    for with_box in (True, False):
        rows = np.flatnonzero(batch.has_box == with_box)
        if len(rows) == 0:
            continue
        sel = torch.as_tensor(rows, device=device)
        pts = _point_tensors([batch.points[i] for i in rows], device)
        out_low, out_iou = predict_prompts(
            sam, features, batch.index.to(device)[sel],
            boxes=batch.boxes.to(device)[sel] if with_box else None,
            points=pts[0] if pts else None, point_labels=pts[1] if pts else None,
            mask_input=mask_input[sel] if mask_input is not None else None,
            tokens=batch.tokens.to(device)[sel],
        )
        if low is None:
            low = out_low.new_zeros((n, *out_low.shape[1:]))
            iou = out_iou.new_zeros((n, *out_iou.shape[1:]))
        low = low.index_copy(0, sel, out_low)
        iou = iou.index_copy(0, sel, out_iou)
    return low, iou


def start_prompts(boxes: torch.Tensor, index: torch.Tensor, targets: torch.Tensor, tokens: torch.Tensor,
                  point_fraction: float, rng: np.random.Generator) -> PromptBatch:
    """Turn box prompts into a mix: a ``point_fraction`` of them become points-only prompts
    (a positive click in each lung of the target)."""
    has_box = np.ones(len(boxes), bool)
    points: list[list[Click]] = [[] for _ in range(len(boxes))]
    tgt = targets.cpu().numpy() > 0.5
    for i in range(len(boxes)):
        if point_fraction > 0 and rng.random() < point_fraction:
            clicks = region_points(tgt[i], rng)
            if clicks:
                has_box[i] = False
                points[i] = clicks
    return PromptBatch(boxes, has_box, points, index, tokens)


def add_corrective_clicks(low: torch.Tensor, batch: PromptBatch, targets: np.ndarray,
                          limits: np.ndarray, img_size: int, rng: np.random.Generator | None) -> None:
    """Append one simulated click per prompt from its current error (input frame)."""
    up = F.interpolate(low.detach().float(), (img_size, img_size), mode="bilinear", align_corners=False)
    pred = (up[:, 0] > 0).cpu().numpy()
    idx = batch.index.cpu().numpy()
    for i in range(len(batch.points)):
        h, w = limits[idx[i]]
        click = corrective_click(pred[i, :h, :w], targets[i, :h, :w], rng)
        if click is not None:
            batch.points[i].append(click)


class InteractiveForward(torch.nn.Module):
    """Encoder + prompt rounds as one module, so DistributedDataParallel sees the whole
    trained forward pass (calling submodules directly would bypass its gradient hooks)."""

    def __init__(self, sam: torch.nn.Module) -> None:
        super().__init__()
        self.sam = sam

    def forward(self, x: torch.Tensor, batch: PromptBatch, targets: torch.Tensor, limits: np.ndarray,
                rounds: int, feedback: bool, rng: np.random.Generator):
        features = self.sam.image_encoder(x)
        mask_input = None
        if rounds:
            tgt = targets.cpu().numpy() > 0.5
            with torch.no_grad():
                for _ in range(rounds):
                    low, _ = decode_batch(self.sam, features.detach(), batch, mask_input)
                    add_corrective_clicks(low, batch, tgt, limits, x.shape[-1], rng)
                    mask_input = low.detach() if feedback else None
        return decode_batch(self.sam, features, batch, mask_input)


def never_trained_on_clicks(meta: dict) -> bool:
    """True for a model whose training never used clicks or mask prompts (model.json's
    provenance records the loop settings; models from before interactive training lack them)."""
    loop = ((meta.get("provenance") or {}).get("config") or {}).get("loop") or {}
    return not loop.get("max_clicks")


@torch.no_grad()
def neutral_mask_prompt(prompt_encoder: torch.nn.Module) -> None:
    """Make SAM's mask prompt start as a no-op: its last conv outputs exactly the "no mask"
    embedding whatever the previous logits. A base trained on boxes alone has a random mask
    branch that would otherwise scramble every refined mask at the start of training."""
    last = prompt_encoder.mask_downscaling[-1]
    last.weight.zero_()
    last.bias.copy_(prompt_encoder.no_mask_embed.weight[0])
