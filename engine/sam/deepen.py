"""Growing a SAM's image encoder deeper without changing its masks.

Why: the shipped model underfits (its Dice on its own training images is barely above val's),
so the next default model needs capacity, and a deeper encoder trained from scratch would
cost a 2-core CPU days. A ViT block whose attention projection and second MLP layer are zero
adds nothing to the residual stream (``x + 0 + 0``), so blocks appended after the source's
last one leave the embedding exactly as it was until they train: the grown model starts
where the source is (the hi-res stem's zero conv is the same idea, :mod:`engine.sam.hires`).
Four more blocks cost 1.30x the embedding time (``benchmarks/encoder_budget.py``).

Block indices count from the encoder's first block; the appended ones follow the source's
last, before the neck.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from segment_anything.modeling import Sam

from engine.sam.config import SamConfig

ZEROED = ("attn.proj", "mlp.lin2")
"""The layers of an appended block that start at zero (weights and biases): its two residual branches."""


def deepens(source: SamConfig, target: SamConfig) -> bool:
    """True when ``target`` is ``source`` with encoder blocks appended: deeper, the same in
    everything else, the source's global-attention blocks at the same indices and any new
    global-attention block among the appended ones."""
    if target.encoder_depth <= source.encoder_depth:
        return False
    kept = tuple(source.encoder_global_attn_indexes)
    indexes = tuple(target.encoder_global_attn_indexes)
    if indexes[: len(kept)] != kept or any(i < source.encoder_depth for i in indexes[len(kept):]):
        return False
    return replace(target, name=source.name, encoder_depth=source.encoder_depth,
                   encoder_global_attn_indexes=kept) == replace(source, encoder_global_attn_indexes=kept)


def grow_depth(source: Sam, target: Sam) -> Sam:
    """Load ``source`` into ``target`` (the same SAM with encoder blocks appended) and zero the
    appended blocks' residual branches, so ``target`` computes exactly ``source``'s embedding
    and masks. LungSAM's own attributes (mask styles) come along. Returns ``target``."""
    source_depth, depth = len(source.image_encoder.blocks), len(target.image_encoder.blocks)
    if depth <= source_depth:
        raise ValueError(f"grow_depth appends blocks to a {source_depth}-block encoder (target has {depth})")
    try:
        result = target.load_state_dict(source.state_dict(), strict=False)
    except RuntimeError as exc:  # a shape mismatch
        raise ValueError(f"the architectures differ beyond the encoder's depth: {exc}") from exc
    new = tuple(f"image_encoder.blocks.{i}." for i in range(source_depth, depth))
    foreign = [k for k in result.missing_keys if not k.startswith(new)]
    if result.unexpected_keys or foreign:
        raise ValueError("the architectures differ beyond the encoder's depth: "
                         f"missing {foreign[:3]}, unexpected {result.unexpected_keys[:3]}")
    with torch.no_grad():
        for i in range(source_depth, depth):
            block = target.image_encoder.blocks[i]
            for name in ZEROED:
                layer = block.get_submodule(name)
                layer.weight.zero_()
                layer.bias.zero_()
    for name, value in vars(source).items():
        if name.startswith("lungsam_"):
            setattr(target, name, value)
    return target
