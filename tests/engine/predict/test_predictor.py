"""The predictor: agreement with segment-anything's SamPredictor, caching, prompt handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from engine.errors import PromptError
from engine.models import LoadedModel
from engine.predict import EmbeddingCache, Predictor, restrict_masks
from tests.conftest import synthetic_cxr
from trainer.evaluation import dice


@pytest.fixture
def varied_model(tiny_sam):
    """Random weights scaled so the masks are partial: agreement is then a real check."""
    sam, config = tiny_sam
    with torch.no_grad():
        sam.mask_decoder.output_hypernetworks_mlps[0].layers[-1].bias.zero_()
    return LoadedModel(sam=sam, config=config, model_hash="varied", source="memory")


def test_masks_match_segment_anything_sampredictor(varied_model):
    image = synthetic_cxr(150, 110)
    ours = Predictor(varied_model, device="cpu")
    ours.set_image(image)
    theirs = SamPredictor(varied_model.sam)
    theirs.set_image(np.repeat(image[:, :, None], 3, axis=2))
    for box in ([10, 20, 100, 140], [5, 5, 60, 80], [40, 30, 109, 149]):
        # The model's own masks (restrict=False); by default a mask is also limited to its box
        # (engine.predict.prompt_region), which SamPredictor does not do.
        mine = ours.predict(boxes=box, restrict=False)
        ref_masks, ref_scores, ref_low = theirs.predict(box=np.array(box), multimask_output=False)
        assert 0.02 < ref_masks[0].mean() < 0.98, "test model must give partial masks"
        assert dice(mine.masks[0, 0], ref_masks[0]) >= 0.999
        limited = ours.predict(boxes=box).masks
        assert np.array_equal(limited, restrict_masks(mine.masks, np.array([box], float), None, None))
        assert np.allclose(mine.scores[0], ref_scores, atol=1e-5)
        assert np.allclose(mine.low_res_logits[0], ref_low, atol=1e-4)


def test_points_and_multimask_match_sampredictor(varied_model):
    image = synthetic_cxr(90, 120, seed=2)
    ours = Predictor(varied_model, device="cpu")
    ours.set_image(image)
    theirs = SamPredictor(varied_model.sam)
    theirs.set_image(np.repeat(image[:, :, None], 3, axis=2))
    pts, labels = np.array([[30.0, 40.0], [90.0, 50.0]]), np.array([1, 0])
    mine = ours.predict(points=pts, point_labels=labels, multimask_output=True, restrict=False)
    ref_masks, ref_scores, _ = theirs.predict(point_coords=pts, point_labels=labels, multimask_output=True)
    assert mine.masks.shape == (1, 3, 90, 120)
    for i in range(3):
        assert dice(mine.masks[0, i], ref_masks[i]) >= 0.999
    assert np.allclose(mine.scores[0], ref_scores, atol=1e-5)


def test_several_boxes_in_one_call_equal_separate_calls(varied_model):
    pred = Predictor(varied_model, device="cpu")
    pred.set_image(synthetic_cxr())
    boxes = np.array([[5, 10, 40, 90], [40, 10, 78, 90]])
    both = pred.predict(boxes=boxes)
    assert both.masks.shape == (2, 1, 96, 80)
    for i, box in enumerate(boxes):
        single = pred.predict(boxes=box)
        assert np.array_equal(single.masks[0], both.masks[i])


def test_mask_input_changes_the_result(varied_model):
    pred = Predictor(varied_model, device="cpu")
    pred.set_image(synthetic_cxr())
    first = pred.predict(boxes=[5, 10, 40, 90])
    refined = pred.predict(boxes=[5, 10, 40, 90], points=[[20, 50]], point_labels=[1],
                           mask_input=first.low_res_logits[:, :1])
    assert refined.low_res_logits.shape == first.low_res_logits.shape
    assert not np.allclose(refined.low_res_logits, first.low_res_logits)


def test_embedding_is_cached_per_image_and_model(loaded_tiny, tiny_sam):
    cache = EmbeddingCache()
    pred = Predictor(loaded_tiny, device="cpu", cache=cache)
    image = synthetic_cxr()
    assert not pred.set_image(image).from_cache
    assert pred.set_image(image).from_cache
    assert not pred.set_image(image[::-1].copy()).from_cache
    other = LoadedModel(sam=tiny_sam[0], config=tiny_sam[1], model_hash="another-model", source="m")
    pred.set_model(other)
    assert not pred.set_image(image).from_cache, "a new model must never reuse a stale embedding"


def test_a_predictor_whose_cache_keeps_nothing_does_not_hash_images(loaded_tiny, monkeypatch):
    from engine.predict import predictor as predictor_module

    hashed = []
    real = predictor_module.image_hash
    monkeypatch.setattr(predictor_module, "image_hash", lambda image: hashed.append(1) or real(image))
    image = synthetic_cxr()
    pred = Predictor(loaded_tiny, device="cpu", cache=EmbeddingCache(max_bytes=0))
    info = pred.set_image(image)
    assert info.image_hash == "" and not info.from_cache and hashed == []
    assert not pred.set_image(image).from_cache and len(pred.cache) == 0
    cached = Predictor(loaded_tiny, device="cpu", cache=EmbeddingCache())
    assert cached.set_image(image).image_hash == real(image) and hashed == [1]


def test_disk_cache_survives_a_new_predictor(loaded_tiny, tmp_path):
    image = synthetic_cxr()
    first = Predictor(loaded_tiny, device="cpu", cache=EmbeddingCache(disk_dir=tmp_path))
    first.set_image(image)
    box = [5, 10, 40, 90]
    expected = first.predict(boxes=box).low_res_logits
    second = Predictor(loaded_tiny, device="cpu", cache=EmbeddingCache(disk_dir=tmp_path))
    assert second.set_image(image).from_cache
    assert np.allclose(second.predict(boxes=box).low_res_logits, expected)


def test_memory_cache_is_bounded_in_bytes():
    from engine.predict import CachedEmbedding

    cache = EmbeddingCache(max_bytes=3 * 4 * 1000)
    for i in range(10):
        cache.put(f"k{i}", CachedEmbedding(torch.zeros(1, 10, 10, 10), (10, 10), (10, 10)))
    assert len(cache) == 3 and cache.nbytes <= cache.max_bytes
    assert cache.get("k9") is not None and cache.get("k0") is None


@pytest.mark.parametrize(
    "box, message",
    [
        ([50, 10, 40, 90], "x1 > x0"),
        ([100, 200, 150, 300], "outside"),
        ([float("nan"), 1, 5, 5], "finite"),
        ([1, 2, 3], "shape"),
    ],
)
def test_bad_boxes_are_refused_with_a_reason(loaded_tiny, box, message):
    pred = Predictor(loaded_tiny, device="cpu")
    pred.set_image(synthetic_cxr())
    with pytest.raises(PromptError, match=message):
        pred.predict(boxes=box)


def test_box_sticking_out_is_clipped(loaded_tiny):
    pred = Predictor(loaded_tiny, device="cpu")
    pred.set_image(synthetic_cxr())
    clipped = pred.predict(boxes=[-20, -5, 200, 300])
    inside = pred.predict(boxes=[0, 0, 80, 96])
    assert np.array_equal(clipped.masks, inside.masks)


def test_points_need_labels_and_must_be_inside(loaded_tiny):
    pred = Predictor(loaded_tiny, device="cpu")
    pred.set_image(synthetic_cxr())
    with pytest.raises(PromptError, match="together"):
        pred.predict(points=[[5, 5]])
    with pytest.raises(PromptError, match="empty"):
        pred.predict(points=np.zeros((0, 2)), point_labels=[])
    with pytest.raises(PromptError, match="outside"):
        pred.predict(points=[[500, 5]], point_labels=[1])


def test_predict_before_set_image_is_an_error(loaded_tiny):
    with pytest.raises(PromptError, match="no image"):
        Predictor(loaded_tiny, device="cpu").predict(boxes=[0, 0, 5, 5])


def test_low_res_decode_is_the_same_decode_without_upsampling(varied_model):
    """predict_low_res (the quality check's many decodes) runs the decoder predict runs."""
    ours = Predictor(varied_model, device="cpu")
    ours.set_image(synthetic_cxr(90, 120, seed=4))
    boxes = np.array([[5.0, 10.0, 60.0, 80.0], [50.0, 8.0, 115.0, 85.0]])
    full = ours.predict(boxes=boxes)
    low, iou = ours.predict_low_res(boxes)
    assert np.array_equal(low, full.low_res_logits[:, 0]) and np.array_equal(iou, full.scores[:, 0])
