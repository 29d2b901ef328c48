"""Mask styles: one model, several annotation conventions, chosen per prompt.

Lung masks differ by who drew them: COVID-QU-Ex stops at the radiographically visible lung,
radiologists at other sites include the lung behind the heart and down to the posterior
costophrenic recesses. A box alone cannot say which is wanted, so a model can carry several
styles. Style ``k`` is SAM's output token ``k``: style 0 is the single-mask output every SAM
has, styles 1-3 reuse the decoder's other mask tokens (the ones SAM's multimask output uses).
No new module, so official SAM tooling still loads and runs the weights.

The names live on the module (``MASK_STYLES_ATTR``) and in model.json (``mask_styles``).
A model without that section has one style, ``default``.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from engine.errors import PromptError

MASK_STYLES_ATTR = "lungsam_mask_styles"
DEFAULT_STYLE = "default"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def mask_styles(sam: nn.Module) -> list[str]:
    """Style names by output token (index 0 first); ``["default"]`` when none are recorded."""
    styles = getattr(sam, MASK_STYLES_ATTR, None)
    return list(styles) if styles else [DEFAULT_STYLE]


def styled_name(model_name: str, style: str | None) -> str:
    """``"model [style]"`` for a named style, the bare name for the default one: how saved
    masks and comparisons say which convention drew them."""
    return f"{model_name} [{style}]" if style and style != DEFAULT_STYLE else model_name


def max_styles(sam: nn.Module) -> int:
    return int(sam.mask_decoder.num_mask_tokens)


def check_style_names(names: object, limit: int) -> list[str]:
    """Validated copy of a style list (model.json or user input); raises ValueError."""
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError("mask_styles must be a non-empty list of names")
    bad = [n for n in names if not _NAME.match(n)]
    if bad:
        raise ValueError(f"mask style name {bad[0]!r}: use lower-case letters, digits, '-' or '_'")
    if len(set(names)) != len(names):
        raise ValueError("mask style names must be unique")
    if len(names) > limit:
        raise ValueError(f"{len(names)} mask styles, but the decoder has only {limit} mask tokens")
    return list(names)


def set_mask_styles(sam: nn.Module, names: list[str]) -> None:
    setattr(sam, MASK_STYLES_ATTR, check_style_names(names, max_styles(sam)))


def style_index(sam: nn.Module, style: str | int | None) -> int:
    """Output token of ``style`` (name or index; None = 0); PromptError names the choices."""
    names = mask_styles(sam)
    if style is None:
        return 0
    if isinstance(style, int) and not isinstance(style, bool):
        if 0 <= style < len(names):
            return style
    elif isinstance(style, str):
        if style in names:
            return names.index(style)
        if style == DEFAULT_STYLE:
            return 0
    raise PromptError(f"unknown mask style {style!r}; this model has: {', '.join(names)}")


@torch.no_grad()
def add_mask_style(sam: nn.Module, name: str, copy_from: int = 0) -> int:
    """Give ``sam`` a new style that starts as an exact copy of style ``copy_from``.

    Why a copy: with a few dozen examples of the new convention, learning the difference
    from a good lung mask is far easier than learning a lung mask from scratch. The copy
    covers the token embedding, its hypernetwork MLP and its IoU-head row.
    """
    names = mask_styles(sam)
    if name in names:
        return names.index(name)
    index = len(names)
    check_style_names([*names, name], max_styles(sam))
    decoder = sam.mask_decoder
    decoder.mask_tokens.weight[index].copy_(decoder.mask_tokens.weight[copy_from])
    decoder.output_hypernetworks_mlps[index].load_state_dict(
        decoder.output_hypernetworks_mlps[copy_from].state_dict()
    )
    last = decoder.iou_prediction_head.layers[-1]
    last.weight[index].copy_(last.weight[copy_from])
    last.bias[index].copy_(last.bias[copy_from])
    set_mask_styles(sam, [*names, name])
    return index
