"""Train the lung box head (:class:`engine.sam.BoxHead`) on a frozen model's image embeddings.

Why it is cheap enough for a CPU: the encoder stays frozen, so each training image is embedded
a few times (once as it is, the other times through the same site-export and pose augmentation
the segmentation training uses, :mod:`trainer.data.augment`) and the head then trains on those
stored embeddings for many epochs in seconds each. Targets are the tight boxes of the
(augmented) lung label maps: both lungs, the lung on the image's left, the one on its right,
in the input frame divided by ``img_size`` (the head's frame).

Loss: L1 on the box corners plus (1 - GIoU), the usual pair for box regression.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.sam import BOX_KINDS, BoxHead, SamConfig, normalize_and_pad, split_embedding
from trainer.data import AugmentConfig, SampleSet, augment_batch, export_artifacts
from trainer.data.lung_labels import IMAGE_LEFT, IMAGE_RIGHT
from trainer.training.validation import images_to_input

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BoxHeadSettings:
    variants: int = 3  # embeddings per training image: the image as is + (variants - 1) augmented
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    embed_batch: int = 16
    seed: int = 0


@dataclass
class EmbeddedBoxes:
    """Embeddings N x C x G x G (float16 to halve memory) and target boxes N x 3 x 4 in 0..1."""

    embeddings: torch.Tensor
    boxes: torch.Tensor


def label_boxes(labels: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tight boxes of union / image-left / image-right lungs, B x 3 x 4 / size, and a B mask of
    the examples that have both lungs (the others cannot teach a per-lung box)."""
    out = torch.zeros(labels.shape[0], len(BOX_KINDS), 4)
    keep = torch.zeros(labels.shape[0], dtype=torch.bool)
    for i, lab in enumerate(labels.cpu().numpy()):
        boxes = []
        for target in (lab > 0, lab == IMAGE_LEFT, lab == IMAGE_RIGHT):
            rows = np.flatnonzero(target.any(axis=1))
            cols = np.flatnonzero(target.any(axis=0))
            if len(rows) == 0:
                break
            boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
        if len(boxes) == len(BOX_KINDS):
            out[i] = torch.as_tensor(np.asarray(boxes, np.float32) / size)
            keep[i] = True
    return out, keep


@torch.inference_mode()
def embed_examples(
    sam: torch.nn.Module,
    config: SamConfig,
    data: SampleSet,
    settings: BoxHeadSettings,
    augment: bool,
    progress: Progress | None = None,
) -> EmbeddedBoxes:
    """Embed every example ``settings.variants`` times (augmented after the first when
    ``augment``); examples without two lungs after augmentation are dropped."""
    gen = torch.Generator().manual_seed(settings.seed)
    variants = settings.variants if augment else 1
    embeddings, boxes = [], []
    total = len(data) * variants
    done = 0
    for variant in range(variants):
        for start in range(0, len(data), settings.embed_batch):
            idx = np.arange(start, min(start + settings.embed_batch, len(data)))
            raw, limits = data.images[idx], data.input_sizes[idx]
            labels = torch.as_tensor(data.labels[idx]).long()
            if variant > 0:
                raw = export_artifacts(raw, limits, AugmentConfig(), gen)
            images = images_to_input(raw)
            if variant > 0:
                images, labels = augment_batch(images, labels, AugmentConfig(), gen)
            target, keep = label_boxes(labels, config.img_size)
            if keep.any():
                encoder: torch.nn.Module = sam.image_encoder  # type: ignore[assignment]
                sizes = torch.as_tensor(limits)[keep]
                feats = encoder(normalize_and_pad(images[keep], config, sizes=sizes)).float()
                # SAM's embedding only: a hi-res model's detail features say nothing of where
                feats = split_embedding(sam.mask_decoder, feats)[0]
                embeddings.append(feats.half())
                boxes.append(target[keep])
            done += len(idx)
            if progress:
                progress("embed", done, total)
    return EmbeddedBoxes(torch.cat(embeddings), torch.cat(boxes))


def generalized_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GIoU of matching boxes (... x 4, x0 y0 x1 y1)."""
    ix0, iy0 = torch.maximum(a[..., 0], b[..., 0]), torch.maximum(a[..., 1], b[..., 1])
    ix1, iy1 = torch.minimum(a[..., 2], b[..., 2]), torch.minimum(a[..., 3], b[..., 3])
    inter = (ix1 - ix0).clamp_min(0) * (iy1 - iy0).clamp_min(0)
    area = lambda t: (t[..., 2] - t[..., 0]).clamp_min(0) * (t[..., 3] - t[..., 1]).clamp_min(0)  # noqa: E731
    union = area(a) + area(b) - inter
    iou = inter / union.clamp_min(1e-9)
    cx0, cy0 = torch.minimum(a[..., 0], b[..., 0]), torch.minimum(a[..., 1], b[..., 1])
    cx1, cy1 = torch.maximum(a[..., 2], b[..., 2]), torch.maximum(a[..., 3], b[..., 3])
    hull = ((cx1 - cx0) * (cy1 - cy0)).clamp_min(1e-9)
    return iou - (hull - union) / hull


def box_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred, target) * 4 + (1 - generalized_iou(pred, target)).mean()


def box_errors(pred: torch.Tensor, target: torch.Tensor, size: int) -> dict[str, float]:
    """Mean corner error in input pixels and mean IoU, over all boxes (the validation figures)."""
    ix0, iy0 = torch.maximum(pred[..., 0], target[..., 0]), torch.maximum(pred[..., 1], target[..., 1])
    ix1, iy1 = torch.minimum(pred[..., 2], target[..., 2]), torch.minimum(pred[..., 3], target[..., 3])
    inter = (ix1 - ix0).clamp_min(0) * (iy1 - iy0).clamp_min(0)
    area = lambda t: (t[..., 2] - t[..., 0]) * (t[..., 3] - t[..., 1])  # noqa: E731
    plain = inter / (area(pred) + area(target) - inter).clamp_min(1e-9)
    return {
        "corner_px": float((pred - target).abs().mean() * size),
        "iou": float(plain.mean()),
        "iou_min": float(plain.min()),
    }


def train_box_head(
    train: EmbeddedBoxes,
    val: EmbeddedBoxes,
    size: int,
    settings: BoxHeadSettings,
    progress: Progress | None = None,
) -> tuple[BoxHead, dict[str, object]]:
    """Fit a head on embedded examples; returns the head of the best validation epoch (lowest
    corner error) and a summary with the per-epoch history."""
    torch.manual_seed(settings.seed)
    channels, grid = train.embeddings.shape[1], train.embeddings.shape[-1]
    head = BoxHead(in_channels=channels, grid=grid)
    opt = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(train.boxes) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=total, pct_start=0.1)
    gen = torch.Generator().manual_seed(settings.seed)
    best: dict[str, object] = {"corner_px": float("inf")}
    best_state = None
    history = []
    start = time.perf_counter()
    for epoch in range(settings.epochs):
        head.train()
        order = torch.randperm(len(train.boxes), generator=gen)
        losses = []
        for s in range(steps_per_epoch):
            idx = order[s * settings.batch_size : (s + 1) * settings.batch_size]
            loss = box_loss(head(train.embeddings[idx].float()), train.boxes[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        head.eval()
        with torch.inference_mode():
            pred = torch.cat([head(val.embeddings[i : i + 256].float()) for i in range(0, len(val.boxes), 256)])
        errors = box_errors(pred, val.boxes, size)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), **errors})
        if errors["corner_px"] < best["corner_px"]:  # type: ignore[operator]
            best = {"epoch": epoch + 1, **errors}
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        if progress:
            progress("train", epoch + 1, settings.epochs)
    if best_state is not None:
        head.load_state_dict(best_state)
    head.eval()
    return head, {
        "best": best,
        "history": history,
        "seconds": time.perf_counter() - start,
        "n_train": len(train.boxes),
        "n_val": len(val.boxes),
        "settings": settings.__dict__,
    }


def fit_box_head_for(
    model_folder: Path,
    data: Path,
    val: Path,
    also: list[Path] | None = None,
    cache_dir: Path | None = None,
    settings: BoxHeadSettings | None = None,
    progress: Progress | None = None,
) -> dict[str, object]:
    """Train a box head on ``model_folder``'s frozen encoder and save it into that folder (and
    into each of ``also``: e.g. the INT8 twin of an FP32 model, whose embeddings differ by the
    quantisation error only). Returns the training summary (also recorded in model.json)."""
    from engine.models import load_model_folder, save_box_head
    from trainer.data import find_pairs, load_set

    settings = settings or BoxHeadSettings()
    model = load_model_folder(model_folder)
    size = model.config.img_size
    train_set = load_set(find_pairs(data), size, cache_dir)
    val_set = load_set(find_pairs(val), size, cache_dir)
    model.sam.eval()
    train_emb = embed_examples(model.sam, model.config, train_set, settings, True, progress)
    val_emb = embed_examples(model.sam, model.config, val_set, settings, False, progress)
    head, summary = train_box_head(train_emb, val_emb, size, settings, progress)
    provenance = {
        "trained_on": str(data), "validated_on": str(val), "encoder_of": model.name,
        "best": summary["best"], "settings": summary["settings"],
        "n_train": summary["n_train"], "n_val": summary["n_val"],
    }
    for folder in [model_folder, *(also or [])]:
        save_box_head(folder, head, provenance)
    return summary
