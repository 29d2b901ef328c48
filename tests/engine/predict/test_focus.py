"""A corrective click edits the mask around it: new logits inside the focus disk, the
previous ones (and so the previous mask) everywhere else, and the merged logits fed back."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import PromptError
from engine.models import load_model
from engine.predict import EmbeddingCache, Predictor
from engine.predict.focus import FOCUS_RADIUS, focus_disk, focus_merge
from engine.sam import coords_to_input, masks_at_original
from tests.conftest import synthetic_cxr


def test_the_disk_is_a_share_of_the_input_side_around_the_click():
    disk = focus_disk((64, 64), (128.0, 64.0), img_size=256)
    ys, xs = np.nonzero(disk)
    assert disk[16, 32] and not disk[16, 32 + 9] and not disk[16 + 9, 32]  # radius 8 cells of 64
    assert xs.max() - xs.min() + 1 == pytest.approx(2 * FOCUS_RADIUS * 64, abs=1)
    same = focus_disk((256, 256), (512.0, 256.0), img_size=1024)  # the same spot, a 4x larger model
    assert same.mean() == pytest.approx(disk.mean(), rel=0.05)


def test_merge_takes_new_inside_and_previous_outside():
    previous, new = np.full((1, 64, 64), -5.0), np.full((1, 64, 64), 5.0)
    merged = focus_merge(previous, new, (10.0, 10.0), img_size=256)
    disk = focus_disk((64, 64), (10.0, 10.0), 256)
    assert merged.dtype == np.float32 and np.all(merged[0][disk] == 5) and np.all(merged[0][~disk] == -5)
    with pytest.raises(ValueError, match="differ in shape"):
        focus_merge(previous, new[:, :32], (10.0, 10.0), 256)


@pytest.fixture(scope="module")
def predictor():
    pred = Predictor(load_model(None), device="cpu", cache=EmbeddingCache(max_bytes=0))
    pred.set_image(synthetic_cxr(240, 200))
    return pred


def test_a_focused_click_leaves_the_mask_outside_its_disk_as_it_was(predictor):
    box = np.array([10.0, 20, 190, 225])
    first = predictor.predict(boxes=box)
    click = np.array([[60.0, 120.0]])
    free = predictor.predict(boxes=box, points=click, point_labels=[0], mask_input=first.low_res_logits[:1])
    focused = predictor.predict(boxes=box, points=click, point_labels=[0], mask_input=first.low_res_logits[:1],
                                focus=True)
    cfg = predictor.config
    click_in = coords_to_input(click, predictor.original_size, cfg.img_size)[0]
    disk = focus_disk(first.low_res_logits.shape[-2:], tuple(click_in), cfg.img_size)
    assert np.array_equal(focused.low_res_logits[0, 0][~disk], first.low_res_logits[0, 0][~disk])
    np.testing.assert_allclose(focused.low_res_logits[0, 0][disk], free.low_res_logits[0, 0][disk], atol=1e-5)
    assert not np.array_equal(free.low_res_logits, first.low_res_logits)  # the click did change something
    # the mask is the merged logits' mask (restricted to the prompt as always)
    current = predictor._require_image()
    import torch

    expected = masks_at_original(torch.from_numpy(focused.low_res_logits), current.input_size, current.original_size,
                                 cfg.img_size, predictor.sam.mask_threshold)
    assert (focused.masks & ~expected).sum() == 0 and focused.masks.sum() > 0.9 * expected.sum()


def test_a_focused_call_needs_previous_logits_and_a_click(predictor):
    with pytest.raises(PromptError, match="focused correction"):
        predictor.predict(boxes=[10, 20, 190, 225], points=[[60, 120]], point_labels=[1], focus=True)
    first = predictor.predict(boxes=[10, 20, 190, 225])
    with pytest.raises(PromptError, match="focused correction"):
        predictor.predict(boxes=[10, 20, 190, 225], mask_input=first.low_res_logits[:1], focus=True)


def test_keep_outside_focus_takes_new_pixels_only_in_the_disk_in_original_pixels():
    from engine.predict import keep_outside_focus

    current, new = np.zeros((300, 400), bool), np.ones((300, 400), bool)
    out = keep_outside_focus(current, new, (200.0, 150.0))
    r = FOCUS_RADIUS * 400  # a share of the longer side, as the low-res disk is of the input side
    ys, xs = np.nonzero(out)
    assert out[150, 200] and not out[150, int(200 + r + 2)] and not out[int(150 + r + 2), 200]
    assert xs.max() - xs.min() + 1 == pytest.approx(2 * r, abs=2)
    assert not current.any()  # the current mask is not edited in place
    edge = keep_outside_focus(current, new, (0.0, 0.0))  # a click at the corner: clipped, no error
    assert edge[0, 0] and edge.sum() < out.sum()
    with pytest.raises(ValueError, match="differ in shape"):
        keep_outside_focus(current, new[:, :10], (1.0, 1.0))


def test_the_radius_is_read_at_call_time(monkeypatch):
    """benchmarks/focus_radius.py tries other radii by setting FOCUS_RADIUS: a default bound
    at import time would ignore it."""
    import engine.predict.focus as focus

    before = focus_disk((64, 64), (128.0, 128.0), 256).sum()
    monkeypatch.setattr(focus, "FOCUS_RADIUS", 2 * FOCUS_RADIUS)
    assert focus_disk((64, 64), (128.0, 128.0), 256).sum() > 3 * before
