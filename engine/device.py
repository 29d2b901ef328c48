"""Device choice: CUDA when present, else CPU, always overridable by the user."""

from __future__ import annotations

import torch

from engine.errors import LungSamError


def resolve_device(requested: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` picks CUDA if available; asking for CUDA without one is an error."""
    if requested is None or str(requested) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LungSamError("CUDA was requested but no CUDA GPU is available; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise LungSamError(f"unsupported device '{requested}' (use cpu or cuda)")
    return device
