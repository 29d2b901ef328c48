"""Build segment-anything's ``Sam`` module from a :class:`SamConfig`.

We reuse segment-anything's modules (encoder, prompt encoder, two-way decoder) so that
official checkpoints load key for key and our results can be compared with SamPredictor.
"""

from __future__ import annotations

from functools import partial

import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

from engine.sam.config import SamConfig
from engine.sam.hires import HiResImageEncoderViT, HiResMaskDecoder, detail_channels


def build_sam(config: SamConfig) -> Sam:
    """A randomly initialised SAM in eval mode with the architecture of ``config``."""
    config.validate()
    grid = config.embedding_size
    encoder_type, decoder_type = (HiResImageEncoderViT, HiResMaskDecoder) if config.hires_skip else (ImageEncoderViT, MaskDecoder)
    detail = {"detail_channels": detail_channels(config.prompt_embed_dim)} if config.hires_skip else {}
    sam = Sam(
        image_encoder=encoder_type(
            depth=config.encoder_depth,
            embed_dim=config.encoder_embed_dim,
            img_size=config.img_size,
            mlp_ratio=config.encoder_mlp_ratio,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=config.encoder_num_heads,
            patch_size=config.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=tuple(config.encoder_global_attn_indexes),
            window_size=config.encoder_window_size,
            out_chans=config.prompt_embed_dim,
            **detail,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=config.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(config.img_size, config.img_size),
            mask_in_chans=config.mask_in_chans,
        ),
        mask_decoder=decoder_type(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=config.decoder_depth,
                embedding_dim=config.prompt_embed_dim,
                mlp_dim=config.decoder_mlp_dim,
                num_heads=config.decoder_num_heads,
            ),
            transformer_dim=config.prompt_embed_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=config.iou_head_hidden_dim,
        ),
        pixel_mean=list(config.pixel_mean),
        pixel_std=list(config.pixel_std),
    )
    sam.eval()
    return sam


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
