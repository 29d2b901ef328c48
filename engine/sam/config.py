"""Architecture configs for SAM-family models, from ViT-H down to our compact model.

One dataclass describes every model the registry can build, so the official checkpoints,
MedSAM and the compact default all go through the same builder, predictor and trainer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from engine.errors import ModelLoadError

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)
#: "sam": (x - mean) / std as the official SAM; "minmax": each image to [0, 1] as MedSAM;
#: "percentile": each image's p1..p99 stretched to 0..255, then SAM's (engine.sam.preprocess).
NORMALIZATIONS = ("sam", "minmax", "percentile")


@dataclass(frozen=True)
class SamConfig:
    """Every number needed to build a SAM (encoder, prompt encoder, mask decoder).

    ``normalization`` is ``"sam"`` (subtract ``pixel_mean``, divide by ``pixel_std``, as the
    official SAM), ``"minmax"`` (stretch each image to [0, 1], as MedSAM was trained) or
    ``"percentile"`` (each image's p1..p99 to 0..255, then as ``"sam"``; see NORMALIZATIONS).
    """

    name: str = "custom"
    img_size: int = 1024
    patch_size: int = 16
    encoder_embed_dim: int = 768
    encoder_depth: int = 12
    encoder_num_heads: int = 12
    encoder_global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    encoder_window_size: int = 14
    encoder_mlp_ratio: float = 4.0
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_hidden_dim: int = 256
    pixel_mean: tuple[float, float, float] = SAM_PIXEL_MEAN
    pixel_std: tuple[float, float, float] = SAM_PIXEL_STD
    normalization: str = "sam"
    # The hi-res detail path (engine.sam.hires): stride-4 image features added to the decoder's
    # upscaled mask features. False for every official SAM.
    hires_skip: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def embedding_size(self) -> int:
        """Side of the image embedding grid (64 for SAM at 1024 px)."""
        return self.img_size // self.patch_size

    @property
    def low_res_size(self) -> int:
        """Side of the decoder's low-resolution logits (4x the embedding grid)."""
        return 4 * self.embedding_size

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("encoder_global_attn_indexes", "pixel_mean", "pixel_std"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelLoadError(f"model config has unknown fields: {', '.join(unknown)}")
        values = dict(data)
        for key in ("encoder_global_attn_indexes", "pixel_mean", "pixel_std"):
            if key in values:
                values[key] = tuple(values[key])
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Refuse configs the SAM modules would only fail on later with a cryptic error."""
        problems = []
        if self.img_size % self.patch_size:
            problems.append("img_size must be a multiple of patch_size")
        if self.encoder_embed_dim % self.encoder_num_heads:
            problems.append("encoder_embed_dim must be divisible by encoder_num_heads")
        if any(i < 0 or i >= self.encoder_depth for i in self.encoder_global_attn_indexes):
            problems.append("encoder_global_attn_indexes must lie in [0, encoder_depth)")
        if self.hires_skip and (self.patch_size != 16 or self.prompt_embed_dim % 8):
            problems.append("hires_skip needs patch_size 16 and prompt_embed_dim a multiple of 8")
        if self.normalization not in NORMALIZATIONS:
            problems.append(f"normalization must be one of {', '.join(NORMALIZATIONS)}")
        if problems:
            raise ModelLoadError(f"invalid model config '{self.name}': " + "; ".join(problems))


VIT_B = SamConfig(name="vit_b")
VIT_L = SamConfig(
    name="vit_l",
    encoder_embed_dim=1024,
    encoder_depth=24,
    encoder_num_heads=16,
    encoder_global_attn_indexes=(5, 11, 17, 23),
)
VIT_H = SamConfig(
    name="vit_h",
    encoder_embed_dim=1280,
    encoder_depth=32,
    encoder_num_heads=16,
    encoder_global_attn_indexes=(7, 15, 23, 31),
)
MEDSAM = SamConfig(name="medsam", normalization="minmax")

# Our shipped default: segment-anything's own modules at 256 px with a small ViT.
# Chosen from ../shared/docs/measurements.md: dim 192 at 256 px runs in ~50 ms on 2 cores.
COMPACT = SamConfig(
    name="compact",
    img_size=256,
    patch_size=16,
    encoder_embed_dim=192,
    encoder_depth=8,
    encoder_num_heads=3,
    encoder_global_attn_indexes=(3, 7),
    encoder_window_size=8,
)

# The compact model with the hi-res detail path (engine.sam.hires, +14 k weights, the same ViT)
# and each image's own grey levels stretched (normalization "percentile"); grown from a
# compact model with `lungsam train base --arch compact-hr --model ...`.
COMPACT_HR = replace(COMPACT, name="compact-hr", hires_skip=True, normalization="percentile")
# A candidate for the next default: compact-hr with four more encoder blocks (the last global),
# grown from a compact-hr model with its masks unchanged (engine.sam.deepen):
# `lungsam train base --arch compact-hr-d12 --model ...`. 1.30x the embedding time.
COMPACT_HR_D12 = replace(COMPACT_HR, name="compact-hr-d12", encoder_depth=12, encoder_global_attn_indexes=(3, 7, 11))
PRESETS: dict[str, SamConfig] = {
    c.name: c for c in (VIT_B, VIT_L, VIT_H, MEDSAM, COMPACT, COMPACT_HR, COMPACT_HR_D12)
}
"""The shipped architectures, and the candidate for the next default."""

# A test preset, not shipped and not in PRESETS: the smallest SAM that still builds, for the
# test suite (runs in milliseconds on a CPU). ``preset("tiny")`` / ``--arch tiny`` still
# build it so the tests can drive the real CLI in subprocesses; tests derive variants with
# ``tests/sam_factory.py:tiny_config``.
TINY = SamConfig(
    name="tiny",
    img_size=64,
    patch_size=16,
    encoder_embed_dim=32,
    encoder_depth=2,
    encoder_num_heads=2,
    encoder_global_attn_indexes=(1,),
    encoder_window_size=2,
    prompt_embed_dim=32,
    mask_in_chans=4,
    decoder_mlp_dim=64,
    decoder_num_heads=2,
    iou_head_hidden_dim=32,
)
TEST_PRESETS: dict[str, SamConfig] = {TINY.name: TINY}


def named_configs() -> dict[str, SamConfig]:
    """Every architecture known by name: the shipped :data:`PRESETS`, then :data:`TEST_PRESETS`."""
    return {**PRESETS, **TEST_PRESETS}


def preset(name: str) -> SamConfig:
    """Look up a named architecture (``vit_b``, ``vit_l``, ``vit_h``, ``medsam``, ``compact``;
    ``tiny`` for tests)."""
    known = named_configs()
    try:
        return known[name]
    except KeyError:
        raise ModelLoadError(
            f"unknown model type '{name}' (known: {', '.join(sorted(known))})"
        ) from None
