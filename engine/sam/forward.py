"""Batched SAM forward for training and evaluation: many images, several prompts each.

segment-anything's ``MaskDecoder.forward`` assumes one image per call; looping over a batch
in Python costs more than the decoder itself at 256 px. Here each prompt carries its own
copy of its image's embedding, so one decoder pass serves the whole batch. The maths is
``MaskDecoder.predict_masks`` step for step (checked against it in the tests).
"""

from __future__ import annotations

import torch
from segment_anything.modeling import MaskDecoder, Sam

from engine.sam.hires import split_embedding


def decode_all_tokens(
    decoder: MaskDecoder,
    embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """N prompts, N embeddings (N x C x h x w) -> low-res logits N x T x 4h x 4w and IoU N x T
    for all T mask tokens. With a :class:`~engine.sam.hires.HiResMaskDecoder` the embeddings
    also carry the detail features, added to the upscaled mask features."""
    embeddings, detail = split_embedding(decoder, embeddings)
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    output_tokens = output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
    sequence = torch.cat((output_tokens, sparse), dim=1)
    src = embeddings + dense
    pos_src = image_pe.expand(src.shape[0], -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = decoder.transformer(src, pos_src, sequence)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1 : (1 + decoder.num_mask_tokens), :]
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    if detail is not None:
        upscaled = upscaled + detail
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)],
        dim=1,
    )
    b, c, h, w = upscaled.shape
    masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
    return masks, decoder.iou_prediction_head(iou_token_out)


def decode_per_prompt(
    decoder: MaskDecoder,
    embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
    multimask_output: bool = False,
    tokens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """N prompts, N embeddings (N x C x h x w) -> low-res logits N x M x 4h x 4w, IoU N x M.

    ``tokens`` (N,) picks one output token per prompt (its mask style, see
    :mod:`engine.sam.styles`); M is then 1 and ``multimask_output`` is ignored.
    """
    masks, iou_pred = decode_all_tokens(decoder, embeddings, image_pe, sparse, dense)
    if tokens is not None:
        rows = torch.arange(masks.size(0), device=masks.device)
        return masks[rows, tokens].unsqueeze(1), iou_pred[rows, tokens].unsqueeze(1)
    sl = slice(1, None) if multimask_output else slice(0, 1)
    return masks[:, sl], iou_pred[:, sl]


def predict_boxes(
    sam: Sam,
    features: torch.Tensor,
    boxes: torch.Tensor,
    image_index: torch.Tensor,
    multimask_output: bool = False,
    tokens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Box prompts (N x 4, input frame) on images ``image_index`` (N,) of ``features`` (B x C x h x w);
    ``tokens`` (N,) optionally picks each prompt's mask style."""
    sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
    return decode_per_prompt(
        sam.mask_decoder,
        features[image_index],
        sam.prompt_encoder.get_dense_pe(),
        sparse,
        dense,
        multimask_output,
        tokens,
    )


def predict_prompts(
    sam: Sam,
    features: torch.Tensor,
    image_index: torch.Tensor,
    boxes: torch.Tensor | None = None,
    points: torch.Tensor | None = None,
    point_labels: torch.Tensor | None = None,
    mask_input: torch.Tensor | None = None,
    tokens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes and/or points (+ previous low-res logits) through SAM's own prompt encoder.

    ``boxes`` N x 4, ``points`` N x P x 2 (input frame), ``point_labels`` N x P (1 lung, 0 not
    lung, -1 padding: SAM's "not a point"), ``mask_input`` N x 1 x 4h x 4w logits of the
    previous round. Exactly what :class:`engine.predict.Predictor` sends for one prompt, so
    the model sees the same tokens in training and in use (SAM pads a points-only prompt with
    one "not a point" token; with a box it does not).
    """
    pts = (points, point_labels) if points is not None else None
    sparse, dense = sam.prompt_encoder(points=pts, boxes=boxes, masks=mask_input)
    return decode_per_prompt(
        sam.mask_decoder, features[image_index], sam.prompt_encoder.get_dense_pe(),
        sparse, dense, False, tokens,
    )
