"""engine/sam/deepen.py: a deeper encoder grown from a model starts with its masks exactly."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from engine.errors import TrainingError
from engine.models import LoadedModel
from engine.sam import build_sam, deepens, grow_depth, mask_styles, preset, set_mask_styles
from tests.sam_factory import tiny_config
from trainer.training.stages import start_model

SHALLOW = tiny_config(encoder_depth=2, encoder_global_attn_indexes=(1,))
DEEP = tiny_config(encoder_depth=4, encoder_global_attn_indexes=(1, 3))


def test_the_grown_model_computes_the_sources_embedding_and_masks_exactly():
    torch.manual_seed(0)
    source = build_sam(SHALLOW).eval()
    grown = grow_depth(source, build_sam(DEEP)).eval()
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = source.image_encoder(image), grown.image_encoder(image)
        assert torch.equal(a, b)
        box = torch.tensor([[[8.0, 8.0], [50.0, 56.0]]])
        sparse, dense = grown.prompt_encoder(points=None, boxes=box.view(1, 4), masks=None)
        masks_a, _ = source.mask_decoder(a, source.prompt_encoder.get_dense_pe(), sparse, dense, False)
        masks_b, _ = grown.mask_decoder(b, grown.prompt_encoder.get_dense_pe(), sparse, dense, False)
    assert torch.equal(masks_a, masks_b)
    # the appended blocks are real blocks, not frozen copies: only their residual outputs start at zero
    new = grown.image_encoder.blocks[3].requires_grad_(False)
    assert float(new.attn.proj.weight.abs().sum()) == 0 and float(new.mlp.lin2.weight.abs().sum()) == 0
    assert float(new.attn.qkv.weight.abs().sum()) > 0 and float(new.mlp.lin1.weight.abs().sum()) > 0


def test_training_the_appended_blocks_changes_the_embedding():
    """Zero residual branches still get gradients (through proj's and lin2's weights)."""
    torch.manual_seed(0)
    grown = grow_depth(build_sam(SHALLOW), build_sam(DEEP))
    out = grown.image_encoder(torch.randn(1, 3, 64, 64)).square().mean()
    out.backward()
    assert float(grown.image_encoder.blocks[3].mlp.lin2.weight.grad.abs().sum()) > 0


def test_which_configs_deepen_and_mask_styles_come_along():
    assert deepens(SHALLOW, DEEP)
    assert deepens(preset("compact-hr"), preset("compact-hr-d12"))
    assert not deepens(preset("compact"), preset("compact-hr-d12"))  # the hi-res path too: two steps
    assert not deepens(DEEP, SHALLOW)
    assert not deepens(SHALLOW, tiny_config(encoder_depth=4, encoder_global_attn_indexes=(2, 3)))  # moved
    assert not deepens(SHALLOW, tiny_config(encoder_depth=4, encoder_global_attn_indexes=(0, 1)))  # new one inside
    assert not deepens(SHALLOW, tiny_config(encoder_depth=4, encoder_global_attn_indexes=(1, 3), encoder_embed_dim=64))
    torch.manual_seed(0)
    source = build_sam(SHALLOW)
    set_mask_styles(source, ["visible", "anatomical"])
    assert mask_styles(grow_depth(source, build_sam(DEEP))) == ["visible", "anatomical"]
    with pytest.raises(ValueError, match="appends blocks"):
        grow_depth(build_sam(DEEP), build_sam(SHALLOW))
    with pytest.raises(ValueError, match="differ beyond the encoder's depth"):
        grow_depth(source, build_sam(tiny_config(encoder_depth=4, encoder_global_attn_indexes=(1, 3),
                                                 encoder_embed_dim=64)))


def test_start_model_grows_by_blocks():
    torch.manual_seed(0)
    base = LoadedModel(sam=build_sam(SHALLOW), config=SHALLOW, model_hash="t", source="memory")
    model, config = start_model(base, replace(DEEP, name="tiny-deep"))
    assert config.encoder_depth == 4 and len(model.image_encoder.blocks) == 4
    with pytest.raises(TrainingError, match="grows only by"):
        start_model(base, tiny_config(encoder_depth=4, encoder_global_attn_indexes=(2, 3)))

