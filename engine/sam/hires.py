"""The hi-res detail path: stride-4 image features added to the decoder's mask features.

Why: SAM's decoder draws its masks from the 16-px token grid alone (16 x 16 tokens for a
256 px input), upscaled 4x by two transposed convs; no pixel-level information reaches the
mask. On covidqu_ex/val, 66 % of the shipped v2 model's error pixels lie within 2 px of the true
lung border (`python benchmarks/error_band.py --data DATA/covidqu_ex/val --limit 200`): errors
of where the border runs inside a token, which only the image can settle.

What: a small conv stem (:class:`HiResStem`) reads the normalised input image once per image
and gives C = ``prompt_embed_dim // 8`` features at stride 4 (64 x 64 for 256 px): the grid of
the decoder's upscaled mask features. They travel inside the image embedding, folded
space-to-depth (B x 16C x G x G after SAM's B x D x G x G), so every cache, worker and ONNX
file that passes one embedding tensor passes them unchanged. The decoder
(:class:`HiResMaskDecoder`) splits them off, adds them to its upscaled features (per prompt, a
single add) and lets each mask token's hypernetwork weigh them as it weighs SAM's own.

The stem's last conv starts at zero, so a model grown from a SAM (:func:`grow_hires`)
computes exactly that SAM's masks until training moves it (ControlNet's zero-conv start).
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, Sam
from torch import nn

from engine.sam.config import SamConfig

#: Stride of the detail features in input pixels (the decoder's upscaled grid at patch 16).
DETAIL_STRIDE = 4
#: Detail cells per token side: patch 16 (SamConfig.validate requires it) over DETAIL_STRIDE.
FOLD = 16 // DETAIL_STRIDE
#: State-dict prefix of the stem: the only keys a grown model adds.
STEM_PREFIX = "image_encoder.hires."


class HiResStem(nn.Module):
    """Normalised image B x 3 x S x S -> detail features B x C x S/4 x S/4 (receptive field
    15 px: edges and local grey level, not anatomy). The last conv is zero at start."""

    def __init__(self, out_channels: int, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(width, out_channels, 3, stride=2, padding=1)
        self.out = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        assert self.out.bias is not None
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.conv2(F.gelu(self.conv1(x)))))


def fold(detail: torch.Tensor, factor: int) -> torch.Tensor:
    """B x C x (G*f) x (G*f) -> B x (C*f*f) x G x G (space-to-depth), inverse of :func:`unfold`."""
    return F.pixel_unshuffle(detail, factor)


def unfold(folded: torch.Tensor, factor: int) -> torch.Tensor:
    """B x (C*f*f) x G x G -> B x C x (G*f) x (G*f) (depth-to-space)."""
    return F.pixel_shuffle(folded, factor)


class HiResImageEncoderViT(ImageEncoderViT):
    """SAM's ViT encoder plus the stem; returns B x (D + 16C) x G x G: SAM's embedding, then
    the folded detail features. State-dict keys of the ViT are SAM's; the stem's are
    ``hires.*``."""

    def __init__(self, *args, detail_channels: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.hires = HiResStem(detail_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coarse = super().forward(x)
        return torch.cat([coarse, fold(self.hires(x), FOLD)], dim=1)


class HiResMaskDecoder(MaskDecoder):
    """SAM's mask decoder that adds the embedding's detail features (see the module
    docstring) to its upscaled mask features; the rest is SAM's decoder, weight for weight."""

    def split(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B x (D + 16C) x G x G -> SAM's embedding B x D x G x G, detail B x C x 4G x 4G."""
        d = self.transformer_dim
        return embeddings[:, :d], unfold(embeddings[:, d:], FOLD)

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SAM's entry point (one image, N prompts, or N embeddings): all mask tokens."""
        from engine.sam.forward import decode_all_tokens  # forward.py imports this module

        n = sparse_prompt_embeddings.shape[0]
        embeddings = image_embeddings.expand(n, -1, -1, -1) if image_embeddings.shape[0] == 1 else image_embeddings
        return decode_all_tokens(self, embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings)


def split_embedding(decoder: MaskDecoder, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(SAM's embedding, detail features or None) for any decoder."""
    if isinstance(decoder, HiResMaskDecoder):
        return decoder.split(embeddings)
    return embeddings, None


def has_hires(sam: Sam) -> bool:
    return isinstance(sam.mask_decoder, HiResMaskDecoder)


def detail_channels(prompt_embed_dim: int) -> int:
    """C: as many detail features as the decoder's upscaled mask features have channels (D / 8)."""
    return prompt_embed_dim // 8


def embedding_channels(sam: Sam) -> int:
    """Channels of ``sam.image_encoder``'s output: SAM's D, plus 16C folded detail features."""
    d = sam.prompt_encoder.embed_dim
    return d + detail_channels(d) * FOLD**2 if has_hires(sam) else d


def adds_hires(source: SamConfig, target: SamConfig) -> bool:
    """True when ``target`` is ``source`` plus the hi-res detail path (its input normalisation
    may differ: compact-hr also stretches each image's grey levels), the rest the same."""
    same_vit = replace(target, name=source.name, hires_skip=False, normalization=source.normalization)
    return target.hires_skip and not source.hires_skip and same_vit == source


def grow_hires(source: Sam, target: Sam) -> Sam:
    """Load ``source`` (a SAM without the detail path) into ``target`` (the same architecture
    with it): every key of ``source`` must fit, only the stem is new (its zero conv keeps the
    masks). LungSAM's own attributes (mask styles) come along. Returns ``target``."""
    if not has_hires(target) or has_hires(source):
        raise ValueError("grow_hires grows a SAM without the hi-res path into one with it")
    try:
        result = target.load_state_dict(source.state_dict(), strict=False)
    except RuntimeError as exc:  # a shape mismatch
        raise ValueError(f"the architectures differ beyond the hi-res path: {exc}") from exc
    foreign = [k for k in result.missing_keys if not k.startswith(STEM_PREFIX)]
    if result.unexpected_keys or foreign:
        raise ValueError(
            "the architectures differ beyond the hi-res path: "
            f"missing {foreign[:3]}, unexpected {result.unexpected_keys[:3]}"
        )
    for name, value in vars(source).items():
        if name.startswith("lungsam_"):
            setattr(target, name, value)
    return target
