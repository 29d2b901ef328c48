"""The two networks an ONNX file holds, as traceable ``nn.Module`` wrappers.

Encoder: ``image`` 1 x 3 x S x S (our :func:`engine.sam.prepare_image` output: resized so the
long side is S, normalised, zero-padded bottom/right) -> ``image_embeddings`` 1 x C x S/16 x S/16.

Decoder: segment-anything's official ONNX interface (``segment_anything.utils.onnx``), so
ONNX-based annotation tools that load SAM's decoder load ours unchanged:

* ``image_embeddings`` 1 x C x h x w, from the encoder;
* ``point_coords`` 1 x N x 2 float, input frame (original pixels scaled by S / long side);
  a box is two points, top-left with label 2 and bottom-right with label 3, after the clicks;
* ``point_labels`` 1 x N float: 1 lung, 0 not lung, 2/3 box corners, -1 "not a point"
  (SAM's prompt encoder pads a points-only prompt with one such point; send it too);
* ``mask_input`` 1 x 1 x 4h x 4w logits of a previous round, ``has_mask_input`` (1,) 0 or 1;
* ``orig_im_size`` (2,) float (H, W) of the original image.

Outputs ``masks`` 1 x 1 x H x W logits (threshold 0), ``iou_predictions`` 1 x 1 and
``low_res_masks`` 1 x 1 x 4h x 4w. Unlike SAM's export, which picks a mask by a heuristic on
the number of points, each decoder file returns one fixed output token: the token of one mask
style (:mod:`engine.sam.styles`), which is what :class:`engine.predict.Predictor` returns for
``multimask_output=False`` and that style. A model with several styles gets one decoder file
per style.
"""

from __future__ import annotations

import torch
from segment_anything.modeling import Sam
from segment_anything.utils.onnx import SamOnnxModel
from torch import nn
from torch.nn import functional as F

from engine.sam import embedding_channels


class EncoderGraph(nn.Module):
    """``image`` -> ``image_embeddings`` (FP32 whatever the model computes in)."""

    def __init__(self, sam: Sam) -> None:
        super().__init__()
        self.image_encoder = sam.image_encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(image).float()


class DecoderGraph(SamOnnxModel):
    """Prompt encoder + mask decoder + upsampling for one output token (one mask style).

    Token 0 is SAM's single-mask output; tokens 1..3 are the multimask outputs that carry
    the extra styles, exactly as :meth:`engine.predict.Predictor._decode` selects them.
    """

    def __init__(self, sam: Sam, token: int = 0) -> None:
        super().__init__(sam, return_single_mask=True)
        if not 0 <= token < sam.mask_decoder.num_mask_tokens:
            raise ValueError(f"output token {token} out of range")
        self.token = token

    @torch.no_grad()
    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
        orig_im_size: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sparse = self._embed_points(point_coords, point_labels)
        dense = self._embed_masks(mask_input, has_mask_input)
        masks, scores = self.model.mask_decoder.predict_masks(
            image_embeddings=image_embeddings,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
        )
        low_res = masks[:, self.token : self.token + 1]
        iou = scores[:, self.token : self.token + 1]
        return self.upsample(low_res, orig_im_size), iou, low_res

    def upsample(self, low_res: torch.Tensor, orig_im_size: torch.Tensor) -> torch.Tensor:
        """Logits at the original size, as :func:`engine.sam.logits_to_original` computes them.

        segment-anything's ``mask_postprocessing`` crops with ``int(tensor)``, which tracing
        freezes to the example image's size; here the crop is an ``index_select`` over an
        ``arange`` of the traced size, so one file serves every image size.
        """
        masks = F.interpolate(low_res, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False)
        resized = self.resize_longest_image_size(orig_im_size, self.img_size)
        masks = masks.index_select(2, torch.arange(resized[0])).index_select(3, torch.arange(resized[1]))
        size = orig_im_size.to(torch.int64)
        return F.interpolate(masks, size=(size[0], size[1]), mode="bilinear", align_corners=False)  # type: ignore[arg-type]  # traced sizes are tensors in ONNX export


def decoder_example_inputs(sam: Sam, n_points: int = 3) -> tuple[torch.Tensor, ...]:
    """Inputs of the right shapes for tracing (N points; N is a dynamic axis in the file)."""
    config_grid = sam.prompt_encoder.image_embedding_size
    channels = embedding_channels(sam)
    low = tuple(4 * g for g in config_grid)
    img = sam.image_encoder.img_size
    return (
        torch.randn(1, channels, *config_grid),
        torch.randint(0, img, (1, n_points, 2)).float(),
        torch.tensor([[1.0, 2.0, 3.0] + [0.0] * (n_points - 3)])[:, :n_points],
        torch.randn(1, 1, *low),
        torch.tensor([1.0]),
        torch.tensor([float(img + 37), float(img - 11)]),
    )
