"""Training data in several mask styles (annotation conventions) for one model.

``--data`` follows one style (``--data-style``, default the model's first); ``--style-data
NAME=DIR`` adds examples of another, oversampled with ``--style-repeat`` because such sets
are small (a site's few dozen radiologist masks next to thousands of public ones). Each
example trains only its own style's output token, so conventions never contradict each
other on the same image. See :mod:`engine.sam.styles`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from engine.errors import TrainingError
from engine.sam import DEFAULT_STYLE, add_mask_style, mask_styles, set_mask_styles
from trainer.data.datasets import Pair, SampleSet, split_pairs


def parse_style_source(text: str) -> tuple[str, Path]:
    """``"NAME=DIR"`` -> (name, folder)."""
    name, sep, folder = text.partition("=")
    if not sep or not name.strip() or not folder.strip():
        raise TrainingError(f"{text!r}: write a style source as NAME=FOLDER, e.g. anatomical=site_masks")
    return name.strip(), Path(folder.strip())


def apply_style_names(model: nn.Module, wanted: list[str], stage: str) -> list[str]:
    """Give ``model`` the styles ``wanted`` (existing ones first, in order; new ones appended as
    copies of style 0). A model still on the unnamed ``default`` style may rename it."""
    have = mask_styles(model)
    if not wanted:
        return have
    if have == [DEFAULT_STYLE] and wanted[0] != DEFAULT_STYLE:
        set_mask_styles(model, [wanted[0]])
        have = [wanted[0]]
    if wanted[: len(have)] != have[: len(wanted)]:
        raise TrainingError(
            f"--styles {','.join(wanted)} must start with the model's styles: {','.join(have)}"
        )
    new = wanted[len(have):]
    if new and stage == "stage2":
        raise TrainingError("new mask styles are added in the base stage or Stage 1 (Stage 2 keeps the decoder)")
    for name in new:
        try:
            add_mask_style(model, name)
        except ValueError as exc:
            raise TrainingError(str(exc)) from exc
    return mask_styles(model)


def token_of(styles: list[str], name: str | None) -> int:
    if name is None:
        return 0
    if name not in styles:
        raise TrainingError(f"mask style {name!r} is not one of the model's styles: {', '.join(styles)} (see --styles)")
    return styles.index(name)


def style_sets(
    sources: list[tuple[str, Path]],
    val_sources: list[tuple[str, Path]],
    styles: list[str],
    find: Callable[[Path], list[Pair]],
    load: Callable[[list[Pair]], SampleSet],
    repeat: int,
    seed: int,
) -> tuple[list[SampleSet], list[SampleSet]]:
    """Train and validation sets of every extra style; a style without ``--style-val`` holds
    back a fifth of its images (by patient) for validation."""
    train, val = [], []
    given_val = {name for name, _ in val_sources}
    for name, folder in sources:
        token = token_of(styles, name)
        pairs = find(folder)
        held: list[Pair] = []
        if name not in given_val:
            pairs, held = split_pairs(pairs, 0.2, seed)
            if not pairs or not held:
                raise TrainingError(f"{folder}: too few images to hold some back for validating style {name!r}")
        train.append(load(pairs).with_style(token).repeated(repeat))
        if held:
            val.append(load(held).with_style(token))
    for name, folder in val_sources:
        val.append(load(find(folder)).with_style(token_of(styles, name)))
    return train, val
