"""Where a model came from: code revision, data, command, configs (MONAI-Label style)."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch


def git_revision(start: Path | None = None) -> str | None:
    """Commit hash of the source tree (with ``-dirty`` when modified), if it is a git checkout."""
    cwd = start or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(stage: str, data: dict[str, Any], config: dict[str, Any], base_model: str | None) -> dict[str, Any]:
    return {
        "stage": stage,
        "base_model": base_model,
        "data": data,
        "config": config,
        "command": " ".join(sys.argv),
        "git_revision": git_revision(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
