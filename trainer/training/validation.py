"""Validation of a training run: Dice in the input frame for boxes, per-lung boxes and clicks.

Kept apart from the loop (:mod:`trainer.training.loop`) so the numbers that choose the
``best/`` model live in one small module with its own tests.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engine.sam import normalize_and_pad
from trainer.data import SampleSet, batch_prompts
from trainer.training.interactive import PromptBatch, add_corrective_clicks, decode_batch


def images_to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """B x S x S x 3 uint8 -> B x 3 x S x S float in 0-255 (not yet normalised)."""
    t = torch.as_tensor(images)
    return t.permute(0, 3, 1, 2).float()


def _dice_rows(pred: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    inter = (pred * targets).flatten(1).sum(1)
    denom = pred.flatten(1).sum(1) + targets.flatten(1).sum(1)
    return (2 * inter / denom.clamp_min(1)).numpy()


@torch.no_grad()
def evaluate_set(model, config, data: SampleSet, batch_size: int = 32, device="cpu",
                 clicks: int = 0) -> dict[str, float]:
    """Mean Dice in the input frame for both-lung and per-lung boxes (no jitter), per mask style.

    Style 0 reports ``val_dice`` / ``val_dice_per_lung``; another style k present in ``data``
    adds ``val_dice_style{k}`` / ``val_dice_per_lung_style{k}``. With ``clicks`` > 0 the
    both-lung box is also refined by that many protocol clicks (previous logits fed back),
    reported as ``val_dice_clicks{clicks}``. ``val_score``, which picks the best epoch, weighs
    every style equally (each style: the mean of its figures), so a small set of a second
    convention is not drowned by a large first one.
    """
    model.eval()
    dice_by: dict[tuple[int, str], list[float]] = {}
    for start in range(0, len(data), batch_size):
        sl = slice(start, start + batch_size)
        limits = data.input_sizes[sl]
        images = images_to_input(torch.as_tensor(data.images[sl]).to(device))
        x = normalize_and_pad(images, config, sizes=torch.as_tensor(limits))
        labels = torch.as_tensor(data.labels[sl])
        boxes, idx, targets, kinds = batch_prompts(labels, limits=limits)
        assert data.styles is not None  # SampleSet fills it in __post_init__
        tokens = torch.as_tensor(data.styles[sl])[idx]
        feats = model.image_encoder(x)
        batch = PromptBatch(boxes, np.ones(len(boxes), bool), [[] for _ in kinds], idx, tokens)
        low, _ = decode_batch(model, feats, batch, None)
        dice = _dice_rows(_input_frame_masks(low, config), targets)
        for kind, token, d in zip(kinds, tokens.tolist(), dice, strict=True):
            dice_by.setdefault((token, kind), []).append(float(d))
        union_rows = [i for i, k in enumerate(kinds) if k == "union"]
        if clicks and union_rows:
            sel = torch.as_tensor(union_rows)
            refine = PromptBatch(boxes[sel], np.ones(len(union_rows), bool), [[] for _ in union_rows], idx[sel],
                                 tokens[sel])
            tgt = targets[sel].numpy() > 0.5
            low_u = low[sel]
            for _ in range(clicks):
                add_corrective_clicks(low_u, refine, tgt, limits, config.img_size, None)
                low_u, _ = decode_batch(model, feats, refine, low_u)
            dice_c = _dice_rows(_input_frame_masks(low_u, config), targets[sel])
            for token, d in zip(tokens[sel].tolist(), dice_c, strict=True):
                dice_by.setdefault((token, f"clicks{clicks}"), []).append(float(d))
    metrics: dict[str, float] = {}
    scores: list[float] = []
    for token in sorted({t for t, _ in dice_by}) or [0]:
        union_list = dice_by.get((token, "union"), [])
        lungs = dice_by.get((token, "image_left"), []) + dice_by.get((token, "image_right"), [])
        union = float(np.mean(union_list)) if union_list else float("nan")
        per_lung = float(np.mean(lungs)) if lungs else float("nan")
        suffix = "" if token == 0 else f"_style{token}"
        metrics[f"val_dice{suffix}"] = union
        metrics[f"val_dice_per_lung{suffix}"] = per_lung
        figures: list[float] = [union, per_lung]
        clicked = dice_by.get((token, f"clicks{clicks}"), [])
        if clicked:
            metrics[f"val_dice_clicks{clicks}{suffix}"] = float(np.mean(clicked))
            figures.append(metrics[f"val_dice_clicks{clicks}{suffix}"])
        scores.append(float(np.nanmean(figures)) if lungs or union_list else float("nan"))
    metrics["val_score"] = float(np.mean(scores))
    return metrics


def _input_frame_masks(low: torch.Tensor, config) -> torch.Tensor:
    """N x 1 x h x w logits -> N x S x S float 0/1 masks in the padded input square."""
    logits = F.interpolate(low.float(), (config.img_size, config.img_size), mode="bilinear", align_corners=False)
    return (logits[:, 0] > 0).cpu().float()
