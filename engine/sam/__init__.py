"""The Segment Anything model as we use it: architecture configs and presets
(:mod:`~engine.sam.config`), the builder on segment-anything's own modules
(:mod:`~engine.sam.build`), the batched forward pass (:mod:`~engine.sam.forward`), the one
mapping of images and prompts into a SAM's input frame and back
(:mod:`~engine.sam.preprocess`), official ``.pth`` checkpoints
(:mod:`~engine.sam.official_checkpoint`), mask styles, one output token per annotation
convention (:mod:`~engine.sam.styles`), and growing a model without changing its masks: the
hi-res detail path (:mod:`~engine.sam.hires`), more encoder blocks (:mod:`~engine.sam.deepen`).
"""

from engine.sam.box_head import BOX_KINDS, BoxHead, box_head_from_arch
from engine.sam.build import build_sam, count_parameters
from engine.sam.config import (
    COMPACT,
    COMPACT_HR,
    COMPACT_HR_D12,
    MEDSAM,
    PRESETS,
    TEST_PRESETS,
    TINY,
    VIT_B,
    VIT_H,
    VIT_L,
    SamConfig,
    named_configs,
    preset,
)
from engine.sam.deepen import deepens, grow_depth
from engine.sam.forward import decode_all_tokens, decode_per_prompt, predict_boxes, predict_prompts
from engine.sam.hires import (
    HiResMaskDecoder,
    adds_hires,
    embedding_channels,
    grow_hires,
    has_hires,
    split_embedding,
)
from engine.sam.official_checkpoint import infer_config, load_state_into, read_state_dict
from engine.sam.preprocess import (
    as_rgb,
    boxes_from_input,
    boxes_to_input,
    coords_to_input,
    masks_at_original,
    normalize_and_pad,
    prepare_image,
    resize_to_input,
)
from engine.sam.styles import (
    DEFAULT_STYLE,
    MASK_STYLES_ATTR,
    add_mask_style,
    check_style_names,
    mask_styles,
    max_styles,
    set_mask_styles,
    style_index,
    styled_name,
)

__all__ = [
    "BOX_KINDS",
    "boxes_from_input",
    "BoxHead",
    "box_head_from_arch",
    "predict_prompts",
    "COMPACT",
    "COMPACT_HR",
    "COMPACT_HR_D12",
    "adds_hires",
    "decode_all_tokens",
    "deepens",
    "embedding_channels",
    "grow_depth",
    "grow_hires",
    "has_hires",
    "split_embedding",
    "HiResMaskDecoder",
    "DEFAULT_STYLE",
    "MASK_STYLES_ATTR",
    "MEDSAM",
    "PRESETS",
    "SamConfig",
    "TEST_PRESETS",
    "TINY",
    "VIT_B",
    "VIT_H",
    "VIT_L",
    "add_mask_style",
    "as_rgb",
    "boxes_to_input",
    "build_sam",
    "check_style_names",
    "coords_to_input",
    "count_parameters",
    "decode_per_prompt",
    "infer_config",
    "load_state_into",
    "mask_styles",
    "masks_at_original",
    "max_styles",
    "named_configs",
    "normalize_and_pad",
    "predict_boxes",
    "prepare_image",
    "preset",
    "read_state_dict",
    "resize_to_input",
    "set_mask_styles",
    "style_index",
    "styled_name",
]
