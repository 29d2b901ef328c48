"""Mask styles: extra output tokens for other annotation conventions, saved and selectable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.errors import ModelLoadError, PromptError
from engine.models import LoadedModel, load_model_folder, save_sam_folder
from engine.predict import Predictor
from engine.sam import add_mask_style, decode_per_prompt, mask_styles, set_mask_styles, style_index
from tests.conftest import synthetic_cxr


def test_a_model_without_styles_has_one_default_style(tiny_sam):
    sam, _ = tiny_sam
    assert mask_styles(sam) == ["default"]
    assert style_index(sam, None) == 0 and style_index(sam, "default") == 0
    with pytest.raises(PromptError, match="unknown mask style 'anatomical'; this model has: default"):
        style_index(sam, "anatomical")


def test_a_new_style_starts_as_an_exact_copy_of_style_zero(tiny_sam):
    sam, config = tiny_sam
    set_mask_styles(sam, ["visible"])
    assert add_mask_style(sam, "anatomical") == 1
    assert mask_styles(sam) == ["visible", "anatomical"]
    predictor = Predictor(LoadedModel(sam, config, "t", "memory"), device="cpu")
    predictor.set_image(synthetic_cxr(96, 80))
    box = np.array([[8, 10, 70, 86]])
    first = predictor.predict(boxes=box, style="visible")
    second = predictor.predict(boxes=box, style="anatomical")
    assert first.masks.any() and not first.masks.all()
    np.testing.assert_allclose(second.low_res_logits, first.low_res_logits, atol=1e-4)
    np.testing.assert_allclose(second.scores, first.scores, atol=1e-5)


def test_each_style_reads_its_own_token(tiny_sam):
    """After the token-1 head changes, style 1 differs and style 0 is untouched."""
    sam, config = tiny_sam
    add_mask_style(sam, "anatomical")
    predictor = Predictor(LoadedModel(sam, config, "t", "memory"), device="cpu")
    predictor.set_image(synthetic_cxr(96, 80))
    box = np.array([8, 10, 70, 86])
    before = predictor.predict(boxes=box).low_res_logits
    with torch.no_grad():
        for p in sam.mask_decoder.output_hypernetworks_mlps[1].parameters():
            p.mul_(-1)
    after = predictor.predict(boxes=box).low_res_logits
    other = predictor.predict(boxes=box, style=1).low_res_logits
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert np.abs(other - before).max() > 1e-2
    with pytest.raises(PromptError, match="default style"):
        predictor.predict(boxes=box, style="anatomical", multimask_output=True)


def test_per_prompt_tokens_match_the_decoders_own_outputs(tiny_sam):
    sam, _ = tiny_sam
    torch.manual_seed(0)
    dim = sam.mask_decoder.transformer_dim
    size = sam.prompt_encoder.image_embedding_size
    emb = torch.randn(3, dim, *size)
    sparse, dense = sam.prompt_encoder(points=None, boxes=torch.tensor([[4.0, 4, 40, 50]] * 3), masks=None)
    pe = sam.prompt_encoder.get_dense_pe()
    all_masks, all_iou = decode_per_prompt(sam.mask_decoder, emb, pe, sparse, dense, multimask_output=True)
    single, _ = decode_per_prompt(sam.mask_decoder, emb, pe, sparse, dense)
    picked, picked_iou = decode_per_prompt(sam.mask_decoder, emb, pe, sparse, dense, tokens=torch.tensor([0, 1, 3]))
    torch.testing.assert_close(picked[0, 0], single[0, 0])
    torch.testing.assert_close(picked[1, 0], all_masks[1, 0])
    torch.testing.assert_close(picked[2, 0], all_masks[2, 2])
    torch.testing.assert_close(picked_iou[2, 0], all_iou[2, 2])


def test_styles_survive_save_and_int8_export(tiny_sam, tmp_path):
    from engine.models import export_int8

    sam, config = tiny_sam
    set_mask_styles(sam, ["visible"])
    add_mask_style(sam, "anatomical")
    save_sam_folder(tmp_path / "fp32", sam, config)
    assert json.loads((tmp_path / "fp32" / "model.json").read_text())["mask_styles"] == ["visible", "anatomical"]
    loaded = load_model_folder(tmp_path / "fp32")
    assert mask_styles(loaded.sam) == ["visible", "anatomical"]
    export_int8(loaded.sam, config, tmp_path / "int8")
    assert mask_styles(load_model_folder(tmp_path / "int8").sam) == ["visible", "anatomical"]


@pytest.mark.parametrize("styles, message", [
    ("anatomical", "non-empty list"),
    (["a", "a"], "unique"),
    (["Visible"], "lower-case"),
    (["a", "b", "c", "d", "e"], "only 4 mask tokens"),
])
def test_bad_style_lists_in_model_json_are_refused(tiny_sam, tmp_path, styles, message):
    sam, config = tiny_sam
    folder = save_sam_folder(tmp_path / "m", sam, config)
    meta = json.loads((folder / "model.json").read_text())
    meta["mask_styles"] = styles
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match=message):
        load_model_folder(folder)
