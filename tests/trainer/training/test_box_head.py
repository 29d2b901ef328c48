"""Training the lung box head: targets from label maps, the box loss, and that it learns."""

from __future__ import annotations

import numpy as np
import torch

from trainer.training.box_head import (
    BoxHeadSettings,
    EmbeddedBoxes,
    box_errors,
    generalized_iou,
    label_boxes,
    train_box_head,
)


def test_label_boxes_are_tight_union_left_right_over_size():
    lab = torch.zeros(1, 32, 32, dtype=torch.long)
    lab[0, 4:20, 2:10] = 1
    lab[0, 6:24, 18:30] = 2
    boxes, keep = label_boxes(lab, 32)
    assert keep.tolist() == [True]
    expected = np.array([[2, 4, 30, 24], [2, 4, 10, 20], [18, 6, 30, 24]]) / 32
    assert np.allclose(boxes[0].numpy(), expected)


def test_an_example_without_both_lungs_is_dropped():
    lab = torch.zeros(1, 16, 16, dtype=torch.long)
    lab[0, 2:8, 2:8] = 1
    assert label_boxes(lab, 16)[1].tolist() == [False]


def test_giou_is_one_for_equal_boxes_and_negative_for_distant_ones():
    a = torch.tensor([[0.1, 0.1, 0.4, 0.4]])
    assert torch.allclose(generalized_iou(a, a), torch.ones(1))
    assert generalized_iou(a, torch.tensor([[0.6, 0.6, 0.9, 0.9]])) < 0


def _synthetic(n: int, seed: int) -> EmbeddedBoxes:
    """Embeddings that show where the boxes are: a blob at each lung's corners, as a real
    encoder's features carry where the lungs lie."""
    g = torch.Generator().manual_seed(seed)
    grid = 8
    emb = torch.zeros(n, 6, grid, grid)
    boxes = torch.zeros(n, 3, 4)
    yy, xx = torch.meshgrid(torch.arange(grid).float(), torch.arange(grid).float(), indexing="ij")
    for i in range(n):
        x0, y0 = torch.rand(2, generator=g) * 0.3
        left = torch.stack([x0, y0, x0 + 0.3, y0 + 0.5])
        right = torch.stack([x0 + 0.4, y0, x0 + 0.7, y0 + 0.5])
        boxes[i] = torch.stack([torch.stack([left[0], left[1], right[2], right[3]]), left, right])
        for c, (bx, by) in enumerate([(left[0], left[1]), (left[2], left[3]), (right[2], right[3])]):
            emb[i, 2 * c] = torch.exp(-((xx - bx * grid) ** 2 + (yy - by * grid) ** 2) / 2)
            emb[i, 2 * c + 1] = bx
    return EmbeddedBoxes(emb.half(), boxes)


def test_the_head_learns_boxes_far_better_than_the_mean_box():
    train, val = _synthetic(160, 0), _synthetic(48, 1)
    head, summary = train_box_head(train, val, 256, BoxHeadSettings(epochs=15, batch_size=32, lr=3e-3))
    mean_box = train.boxes.mean(0, keepdim=True).expand_as(val.boxes)
    baseline = box_errors(mean_box, val.boxes, 256)["corner_px"]
    assert summary["best"]["corner_px"] < 0.5 * baseline, (summary["best"], baseline)
