"""One error family for everything a user can get wrong.

The CLI and GUI catch :class:`LungSamError` and show its message as is, so every
message must name the file (or argument) and say what is wrong in plain words.
"""

from __future__ import annotations


class LungSamError(Exception):
    """Base class: a problem the user can understand and fix."""


class ImageLoadError(LungSamError):
    """An image file could not be read or is not a usable chest X-ray."""


class ModelLoadError(LungSamError):
    """A checkpoint or model folder is missing, corrupt or does not fit."""


class PromptError(LungSamError):
    """A box or point prompt is outside the image or malformed."""


class TrainingError(LungSamError):
    """A training run cannot start or continue (data, model, disk)."""
