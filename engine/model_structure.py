"""Module surgery a model folder records: AdaLoRA adapters and INT8 layers.

Saving describes the structure of a live model; loading rebuilds that structure on a fresh
SAM before the weights are loaded, so the state-dict keys match exactly.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def describe_structure(model: nn.Module) -> dict[str, Any]:
    """The ``adapter`` and ``int8`` sections of model.json for ``model`` as it is now."""
    return {"adapter": None, "int8": None}


def prepare_structure(model: nn.Module, meta: dict[str, Any]) -> None:
    """Wrap/replace modules of a freshly built SAM as ``meta`` says, before loading weights."""
    return None
