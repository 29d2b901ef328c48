"""Interactive training: the loop decodes prompts exactly as the predictor does in use."""

from __future__ import annotations

import numpy as np
import torch

from engine.models import LoadedModel
from engine.predict import Predictor
from engine.sam import predict_boxes, prepare_image
from trainer.training.interactive import (
    InteractiveForward,
    PromptBatch,
    decode_batch,
    neutral_mask_prompt,
    never_trained_on_clicks,
    start_prompts,
)


def _image(size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((size, size)) * 255).astype(np.uint8)


def test_box_prompts_decode_like_predict_boxes(tiny_sam):
    sam, config = tiny_sam
    x = prepare_image(_image(config.img_size), config).tensor
    with torch.no_grad():
        feats = sam.image_encoder(x)
        boxes = torch.tensor([[4.0, 6.0, 50.0, 58.0], [10.0, 10.0, 30.0, 40.0]])
        idx = torch.zeros(2, dtype=torch.long)
        tokens = torch.zeros(2, dtype=torch.long)
        want, want_iou = predict_boxes(sam, feats, boxes, idx, tokens=tokens)
        got, got_iou = decode_batch(sam, feats, PromptBatch(boxes, np.ones(2, bool), [[], []], idx, tokens), None)
    assert torch.equal(want, got) and torch.equal(want_iou, got_iou)


def test_training_prompts_equal_what_the_predictor_sends(tiny_sam):
    """A box + clicks + previous logits, and points alone: same logits in the loop and in use
    (image as large as the input, so both frames coincide)."""
    sam, config = tiny_sam
    sam.eval()
    image = _image(config.img_size)
    predictor = Predictor(LoadedModel(sam=sam, config=config, model_hash="t", source="memory"), device="cpu")
    predictor.set_image(image)
    feats = sam.image_encoder(prepare_image(image, config).tensor).detach()
    box = [4.0, 6.0, 50.0, 58.0]
    clicks = [(20.5, 30.5, 1), (40.5, 12.5, 0)]
    first = predictor.predict(boxes=box)
    used = predictor.predict(boxes=box, points=np.array([c[:2] for c in clicks]),
                             point_labels=np.array([c[2] for c in clicks]), mask_input=first.low_res_logits)
    only = predictor.predict(points=np.array([clicks[0][:2]]), point_labels=np.array([1]))
    batch = PromptBatch(torch.tensor([box, box]), np.array([True, False]), [list(clicks), [clicks[0]]],
                        torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    prev = torch.as_tensor(np.concatenate([first.low_res_logits, first.low_res_logits]))
    with torch.no_grad():
        got, _ = decode_batch(sam, feats, batch, prev)
        alone, _ = decode_batch(sam, feats, PromptBatch(batch.boxes[1:], np.array([False]), [[clicks[0]]],
                                                        batch.index[1:], batch.tokens[1:]), None)
    np.testing.assert_allclose(got[0].numpy(), used.low_res_logits[0], atol=1e-5)
    np.testing.assert_allclose(alone[0].numpy(), only.low_res_logits[0], atol=1e-5)


def test_neutral_mask_prompt_makes_any_previous_mask_a_no_op(tiny_sam):
    sam, _ = tiny_sam
    box = torch.tensor([[4.0, 6.0, 50.0, 58.0]])
    low = sam.prompt_encoder.mask_input_size
    mask = torch.randn(1, 1, *low) * 10
    neutral_mask_prompt(sam.prompt_encoder)
    with torch.no_grad():
        _, with_mask = sam.prompt_encoder(points=None, boxes=box, masks=mask)
        _, without = sam.prompt_encoder(points=None, boxes=box, masks=None)
    torch.testing.assert_close(with_mask, without)


def test_models_without_click_training_are_recognised():
    assert never_trained_on_clicks({})
    assert never_trained_on_clicks({"provenance": {"config": {"loop": {"epochs": 3}}}})
    assert not never_trained_on_clicks({"provenance": {"config": {"loop": {"max_clicks": 4}}}})


def test_click_rounds_add_one_click_per_round_and_train_the_last(tiny_sam):
    sam, config = tiny_sam
    image = _image(config.img_size)
    x = prepare_image(image, config).tensor.repeat(2, 1, 1, 1)
    targets = torch.zeros(2, config.img_size, config.img_size)
    targets[:, 10:50, 8:28] = 1
    targets[:, 10:50, 36:56] = 1
    boxes = torch.tensor([[8.0, 10.0, 56.0, 50.0]] * 2)
    rng = np.random.default_rng(0)
    batch = start_prompts(boxes, torch.arange(2), targets, torch.zeros(2, dtype=torch.long), 0.5, rng)
    before = [len(p) for p in batch.points]
    limits = np.array([[config.img_size] * 2] * 2)
    low, iou = InteractiveForward(sam)(x, batch, targets, limits, 3, True, rng)
    assert low.requires_grad and low.shape == (2, 1, *sam.prompt_encoder.mask_input_size)
    after = [len(p) for p in batch.points]
    assert all(a - b <= 3 for a, b in zip(after, before, strict=True)) and sum(after) > sum(before)
    low.sum().backward()
    assert sam.prompt_encoder.point_embeddings[0].weight.grad is not None
