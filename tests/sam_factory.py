"""Tiny SAM configs for tests: variants of the engine's test preset ``engine.sam.TINY``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.sam import TINY, SamConfig


def tiny_config(img_size: int = 64, **overrides: Any) -> SamConfig:
    """A very small SAM for tests: builds and runs in milliseconds on a CPU."""
    return replace(TINY, **{"img_size": img_size, "extra": {}, **overrides})
