"""BCE + soft Dice on mask logits (the paper's loss), plus an IoU-head regression term."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per mask, averaged; logits and target N x H x W."""
    prob = torch.sigmoid(logits).flatten(1)
    tgt = target.flatten(1)
    inter = (prob * tgt).sum(1)
    return (1 - (2 * inter + eps) / (prob.sum(1) + tgt.sum(1) + eps)).mean()


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Hard IoU per mask (N,), the target of SAM's quality head."""
    pred = (logits > 0).flatten(1).float()
    tgt = target.flatten(1)
    inter = (pred * tgt).sum(1)
    union = pred.sum(1) + tgt.sum(1) - inter
    return inter / union.clamp_min(1.0)


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, iou_pred: torch.Tensor | None = None, iou_weight: float = 0.1
) -> tuple[torch.Tensor, dict[str, float]]:
    """L = BCE + Dice (+ iou_weight * MSE of the predicted IoU); returns parts for logging."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    dice = dice_loss(logits, target)
    loss = bce + dice
    parts = {"bce": float(bce.detach()), "dice_loss": float(dice.detach())}
    if iou_pred is not None:
        iou_l = F.mse_loss(iou_pred, mask_iou(logits.detach(), target))
        loss = loss + iou_weight * iou_l
        parts["iou_loss"] = float(iou_l.detach())
    return loss, parts
