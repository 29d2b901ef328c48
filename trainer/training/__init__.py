"""Training: the shared loop with resume, events and DDP (:mod:`~trainer.training.loop`),
losses, the stages (base, Stage 1 AdaLoRA, Stage 2 QAT; :mod:`~trainer.training.stages`), a
run from a request to its folder (:mod:`~trainer.training.run`), the JSON-lines event protocol
(:mod:`~trainer.training.events`), the settings form of each stage
(:mod:`~trainer.settings`) and the provenance recorded with each model
(:mod:`~trainer.training.provenance`).
"""

from trainer.settings import (
    SETTINGS,
    BaseSettings,
    Stage1Settings,
    Stage2Settings,
    StageSettings,
    add_settings_arguments,
    default_settings,
    settings_for,
    settings_from_args,
)
from trainer.training.events import EventWriter, read_events
from trainer.training.loop import (
    CHECKPOINT,
    History,
    LoopConfig,
    StageHooks,
    Trainer,
    evaluate_set,
    lr_factor,
)
from trainer.training.losses import segmentation_loss
from trainer.training.run import (
    DEFAULT_VAL_FRACTION,
    OVERLAP_MIN_CORR,
    TrainRequest,
    read_exclude,
    recover_run_folder,
    run_stage,
    start_model_spec,
)
from trainer.training.stages import (
    BaseStageConfig,
    Stage1Config,
    Stage2Config,
    base_stage,
    stage1,
    stage2,
)

__all__ = [
    "BaseStageConfig",
    "CHECKPOINT",
    "EventWriter",
    "History",
    "LoopConfig",
    "OVERLAP_MIN_CORR",
    "DEFAULT_VAL_FRACTION",
    "SETTINGS",
    "BaseSettings",
    "Stage1Settings",
    "Stage2Settings",
    "StageSettings",
    "add_settings_arguments",
    "default_settings",
    "settings_for",
    "settings_from_args",
    "start_model_spec",
    "Stage1Config",
    "Stage2Config",
    "StageHooks",
    "TrainRequest",
    "Trainer",
    "base_stage",
    "evaluate_set",
    "lr_factor",
    "read_events",
    "read_exclude",
    "recover_run_folder",
    "run_stage",
    "segmentation_loss",
    "stage1",
    "stage2",
]
