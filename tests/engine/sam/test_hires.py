"""The hi-res detail path (engine.sam.hires): shapes, the zero start of a grown model, both
decoder paths adding the detail, and what reads only SAM's part of the embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import ModelLoadError, TrainingError
from engine.models import LoadedModel, export_int8, load_model_folder, save_sam_folder
from engine.predict import Predictor
from engine.quant import Int8Conv2d, int8_layers
from engine.sam import (
    BoxHead,
    SamConfig,
    build_sam,
    decode_per_prompt,
    embedding_channels,
    grow_hires,
    has_hires,
    mask_styles,
    preset,
    set_mask_styles,
    split_embedding,
)
from engine.sam.hires import fold, unfold
from tests.conftest import synthetic_cxr
from tests.sam_factory import tiny_config
from trainer.training.stages import start_model


def models(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(plain tiny SAM, the same grown by the hi-res path)."""
    torch.manual_seed(seed)
    plain = build_sam(tiny_config()).eval()
    grown = grow_hires(plain, build_sam(tiny_config(hires_skip=True))).eval()
    return plain, grown


def wake_stem(sam: torch.nn.Module, seed: int = 1) -> None:
    """Give the zero-initialised last conv of the stem weights, as training would."""
    gen = torch.Generator().manual_seed(seed)
    out = sam.image_encoder.hires.out
    with torch.no_grad():
        out.weight.copy_(torch.randn(out.weight.shape, generator=gen) * 0.5)
        out.bias.copy_(torch.randn(out.bias.shape, generator=gen) * 0.5)


def decode_both_ways(sam, image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-res logits of SAM's own MaskDecoder.forward and of our batched decode_per_prompt."""
    with torch.no_grad():
        emb = sam.image_encoder(image)
        sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
        pe = sam.prompt_encoder.get_dense_pe()
        own, _ = sam.mask_decoder(emb, pe, sparse, dense, False)
        batched, _ = decode_per_prompt(sam.mask_decoder, emb.expand(len(boxes), -1, -1, -1), pe, sparse, dense)
    return own, batched


IMAGE = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
BOXES = torch.tensor([[4.0, 6.0, 40.0, 50.0], [20.0, 10.0, 60.0, 60.0]])


def test_embedding_carries_sam_part_then_folded_detail():
    plain, grown = models()
    with torch.no_grad():
        emb_plain, emb_grown = plain.image_encoder(IMAGE), grown.image_encoder(IMAGE)
    d = tiny_config().prompt_embed_dim
    assert emb_plain.shape == (1, d, 4, 4)
    assert emb_grown.shape == (1, embedding_channels(grown), 4, 4) == (1, d + (d // 8) * 16, 4, 4)
    assert embedding_channels(plain) == d
    sam_part, detail = split_embedding(grown.mask_decoder, emb_grown)
    assert torch.equal(sam_part, emb_plain)  # the ViT is the grown-from model's, key for key
    assert detail.shape == (1, d // 8, 16, 16)  # the decoder's upscaled grid, 4 x 4 tokens x 4
    assert split_embedding(plain.mask_decoder, emb_plain)[1] is None


def test_fold_is_inverted_by_unfold_and_keeps_each_pixel_in_its_token():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float).view(2, 3, 8, 8)
    folded = fold(x, 4)
    assert folded.shape == (2, 48, 2, 2)
    assert torch.equal(unfold(folded, 4), x)
    # token (1, 0) holds pixels rows 4..7, columns 0..3 of every channel
    assert set(folded[0, :16, 1, 0].tolist()) == set(x[0, 0, 4:8, 0:4].flatten().tolist())


def test_grown_model_draws_exactly_the_original_masks_until_the_stem_trains():
    plain, grown = models()
    own_plain, _ = decode_both_ways(plain, IMAGE, BOXES)
    own_grown, batched_grown = decode_both_ways(grown, IMAGE, BOXES)
    assert torch.equal(own_grown, own_plain)
    assert torch.allclose(batched_grown, own_plain, atol=1e-5)
    wake_stem(grown)
    own_awake, batched_awake = decode_both_ways(grown, IMAGE, BOXES)
    assert (own_awake - own_plain).abs().max() > 1e-2  # the detail reaches the masks ...
    assert torch.allclose(batched_awake, own_awake, atol=1e-5)  # ... through both decoder paths


def test_grow_keeps_mask_styles_and_refuses_other_architectures():
    torch.manual_seed(0)
    plain = build_sam(tiny_config())
    set_mask_styles(plain, ["visible", "anatomical"])
    grown = grow_hires(plain, build_sam(tiny_config(hires_skip=True)))
    assert has_hires(grown) and mask_styles(grown) == ["visible", "anatomical"]
    wider = build_sam(tiny_config(hires_skip=True, encoder_embed_dim=64))
    with pytest.raises(ValueError, match="differ beyond the hi-res path"):
        grow_hires(plain, wider)
    with pytest.raises(ValueError, match="without the hi-res path"):
        grow_hires(grown, build_sam(tiny_config(hires_skip=True)))


def test_start_model_grows_only_by_the_hires_path():
    torch.manual_seed(0)
    config = tiny_config()
    base = LoadedModel(sam=build_sam(config), config=config, model_hash="t", source="memory")
    same, same_config = start_model(base, config)
    assert same is base.sam and same_config == config
    model, grown_config = start_model(base, tiny_config(hires_skip=True, name="tiny-hr"))
    assert has_hires(model) and grown_config.hires_skip
    renormalised, _ = start_model(base, tiny_config(hires_skip=True, normalization="percentile"))
    assert has_hires(renormalised)  # compact-hr also stretches each image's grey levels
    with pytest.raises(TrainingError, match="not the architecture"):
        start_model(base, tiny_config(encoder_depth=3, encoder_global_attn_indexes=(2,)))


def test_config_checks_and_old_model_json_without_the_field():
    assert preset("compact-hr").hires_skip and not preset("compact").hires_skip
    with pytest.raises(ModelLoadError, match="hires_skip"):
        tiny_config(hires_skip=True, patch_size=8).validate()
    old = tiny_config().to_dict()
    del old["hires_skip"]
    assert SamConfig.from_dict(old).hires_skip is False


def test_box_head_reads_only_sams_part_of_a_hires_embedding():
    _, grown = models()
    wake_stem(grown)
    with torch.no_grad():
        emb = grown.image_encoder(IMAGE)
        head = BoxHead(in_channels=tiny_config().prompt_embed_dim, grid=4).eval()
        assert torch.equal(head(emb), head(split_embedding(grown.mask_decoder, emb)[0]))


def test_hires_model_saves_exports_int8_and_predicts_through_the_app_path(tmp_path):
    _, grown = models()
    wake_stem(grown)
    config = tiny_config(hires_skip=True)
    fp32 = load_model_folder(save_sam_folder(tmp_path / "fp32", grown, config))
    assert has_hires(fp32.sam) and fp32.config.hires_skip
    int8 = load_model_folder(export_int8(grown, config, tmp_path / "int8"))
    # the stem is not in the paper's INT8 selection (encoder: non-qkv Linear, neck, patch embedding)
    assert not [n for n in int8_layers(int8.sam) if ".hires." in n]
    assert not isinstance(int8.sam.image_encoder.hires.out, Int8Conv2d)
    image = synthetic_cxr(80, 96)
    box = np.array([8.0, 10.0, 70.0, 85.0])
    masks = []
    for model in (fp32, int8):
        predictor = Predictor(model, device="cpu")
        predictor.set_image(image)
        masks.append(predictor.predict(boxes=box).masks[0, 0])
    plain_sam = build_sam(tiny_config())
    plain_sam.load_state_dict({k: v for k, v in grown.state_dict().items() if ".hires." not in k})
    plain = Predictor(LoadedModel(sam=plain_sam.eval(), config=tiny_config(), model_hash="p", source="memory"))
    plain.set_image(image)
    assert masks[0].shape == image.shape
    assert (masks[0] != plain.predict(boxes=box).masks[0, 0]).any()  # the detail is used in the app
    assert (masks[0] == masks[1]).mean() > 0.99
