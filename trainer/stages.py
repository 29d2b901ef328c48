"""Stage 0 (base), Stage 1 (AdaLoRA) and Stage 2 (QAT) as parameter choices + loop hooks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from engine.errors import TrainingError
from engine.model_folder import LoadedModel, save_sam_folder
from engine.sam_builder import build_sam
from engine.sam_config import SamConfig
from trainer.loop import StageHooks


@dataclass
class BaseStageConfig:
    """Stage 0: every parameter trains (from scratch or from a checkpoint)."""

    lr: float = 4e-4
    storage_dtype: str = "float32"


def start_model(base: LoadedModel | None, config: SamConfig | None) -> tuple[torch.nn.Module, SamConfig]:
    if base is not None:
        return base.sam, base.config
    if config is None:
        raise TrainingError("give a model to start from or an architecture (--arch)")
    torch.manual_seed(0)
    return build_sam(config), config


def base_stage(
    model: torch.nn.Module,
    config: SamConfig,
    stage_cfg: BaseStageConfig,
    provenance: dict[str, Any],
) -> tuple[list[dict[str, Any]], StageHooks]:
    """All parameters in one group; the best epoch is saved as an FP32 model folder."""
    for p in model.parameters():
        p.requires_grad_(True)
    groups = [{"params": [p for p in model.parameters()], "lr": stage_cfg.lr, "name": "all"}]

    def export_best(path: Path, metrics: dict[str, Any]) -> None:
        save_sam_folder(
            path, model, config, storage_dtype=stage_cfg.storage_dtype,
            extra_meta={"name": path.parent.name, "provenance": {**provenance, "stage_config": asdict(stage_cfg)},
                        "metrics": metrics},
        )

    return groups, StageHooks(export_best=export_best)
