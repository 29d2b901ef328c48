"""The loop's validation Dice (which picks the epoch saved as ``best/``) is the evaluation's
Dice: ``trainer.training.validation.evaluate_set`` against ``trainer.evaluation.metrics.dice`` on
masks whose sizes differ, so 2|P&T| / (|P|+|T|), 2|P&T| / 2max and 2|P&T| / 2min all differ."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.sam_factory import tiny_config
from tests.train_factory import synthetic_set
from trainer.evaluation.metrics import dice, iou
from trainer.training import evaluate_set
from trainer.training import validation as loop_module

CONFIG = tiny_config(img_size=64)


def predicted_masks(lungs: np.ndarray) -> np.ndarray:
    """Both lungs grown by 2 pixels to the right and cut at the top (|P| != |T|)."""
    grown = lungs.astype(bool)
    for _ in range(2):
        grown = grown | np.roll(grown, 1, axis=-1)
    grown[..., :22, :] = False
    return grown


class Encoder(nn.Module):
    def forward(self, x):
        return x


class StubModel(nn.Module):
    """Stands in for a SAM: the decoder (patched below) returns fixed masks per image."""

    def __init__(self) -> None:
        super().__init__()
        self.image_encoder = Encoder()


@pytest.fixture
def known_predictions(monkeypatch):
    data = synthetic_set(CONFIG.img_size, 3)
    preds = predicted_masks(data.labels > 0)
    calls = []

    def decode(model, feats, batch, mask_input):
        # the stub encoder passes the normalised image through: the lungs are its bright part
        calls.append(len(batch.points))
        rows = predicted_masks(feats[batch.index, 0].numpy() > 0)
        low = torch.where(torch.as_tensor(rows), 5.0, -5.0)[:, None].float()
        return low, torch.zeros(len(rows), 1)

    monkeypatch.setattr(loop_module, "decode_batch", decode)
    return data, preds, calls


def test_validation_dice_is_the_evaluation_dice(known_predictions):
    data, preds, calls = known_predictions
    metrics = evaluate_set(StubModel(), CONFIG, data, batch_size=2)
    assert calls, "the patched decoder was used"
    union = [dice(p, lab > 0) for p, lab in zip(preds, data.labels, strict=True)]
    lungs = [dice(p, lab == v) for p, lab in zip(preds, data.labels, strict=True) for v in (1, 2)]
    # the masks are chosen so that a wrong denominator shows
    for p, lab in zip(preds, data.labels, strict=True):
        inter = (p & (lab > 0)).sum()
        assert p.sum() != (lab > 0).sum()
        assert 2 * inter / (2 * max(p.sum(), (lab > 0).sum())) < dice(p, lab > 0) - 0.01
        assert 2 * inter / (2 * min(p.sum(), (lab > 0).sum())) > dice(p, lab > 0) + 0.01
        assert iou(p, lab > 0) < dice(p, lab > 0) - 0.01
    assert metrics["val_dice"] == pytest.approx(np.mean(union), abs=1e-6)
    assert metrics["val_dice_per_lung"] == pytest.approx(np.mean(lungs), abs=1e-6)
    assert metrics["val_score"] == pytest.approx((np.mean(union) + np.mean(lungs)) / 2, abs=1e-6)
    assert 0.3 < metrics["val_dice"] < 0.95, "a middling score, not a trivial 0 or 1"


def test_validation_dice_after_clicks_is_the_evaluation_dice(known_predictions):
    data, preds, _ = known_predictions
    metrics = evaluate_set(StubModel(), CONFIG, data, batch_size=3, clicks=2)
    union = np.mean([dice(p, lab > 0) for p, lab in zip(preds, data.labels, strict=True)])
    lungs = np.mean([dice(p, lab == v) for p, lab in zip(preds, data.labels, strict=True) for v in (1, 2)])
    assert metrics["val_dice_clicks2"] == pytest.approx(union, abs=1e-6)  # the stub ignores clicks
    assert metrics["val_score"] == pytest.approx((union + lungs + union) / 3, abs=1e-6)


def test_validation_dice_of_an_empty_prediction_is_zero(monkeypatch):
    data = synthetic_set(CONFIG.img_size, 2)

    def decode(model, feats, batch, mask_input):
        return torch.full((len(batch.points), 1, 64, 64), -5.0), torch.zeros(len(batch.points), 1)

    monkeypatch.setattr(loop_module, "decode_batch", decode)
    metrics = evaluate_set(StubModel(), CONFIG, data)
    assert metrics["val_dice"] == 0.0 and metrics["val_dice_per_lung"] == 0.0
