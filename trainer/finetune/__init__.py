"""The fine-tune pipeline of a project, without Qt: plan (patient-grouped split, stage settings,
the base model; :mod:`~trainer.finetune.plan`), a measured duration estimate
(:mod:`~trainer.finetune.estimate`), the run itself as one object a GUI or CLI drives
(:class:`~trainer.finetune.pipeline.FineTune`: Stage 1 -> Stage 2 -> held-back comparison ->
register), the comparison and its verdict (:mod:`~trainer.finetune.compare`) and the project's
model versions (:mod:`~trainer.finetune.versions`).
"""

from trainer.finetune.compare import (
    MIN_HELD_BACK,
    PROMPT,
    Verdict,
    compare_models,
    evaluate_on,
    held_back_pairs,
    model_facts,
    verdict,
)
from trainer.finetune.estimate import (
    HOURS_WARNING_S,
    SECONDS_PER_IMAGE,
    Estimate,
    estimate,
    format_duration,
    resolved_device,
    seconds_per_image,
)
from trainer.finetune.pipeline import (
    REGISTER_POLICIES,
    STAGES,
    FineTune,
    model_styles,
    plan_problem,
)
from trainer.finetune.plan import (
    DATA_CACHE,
    SplitPreview,
    TrainPlan,
    can_start_stage1,
    child_env,
    cli_prefix,
    default_threads,
    fine_tune_base,
    model_arch,
    model_meta,
    new_run_dir,
    preview_split,
    shipped_base,
    stage2_exclude,
    stage_args,
)
from trainer.finetune.versions import (
    activate,
    ensure_base_in_history,
    find_version,
    register_run,
    same_path,
    version_name,
)

__all__ = [
    "DATA_CACHE",
    "Estimate",
    "FineTune",
    "HOURS_WARNING_S",
    "MIN_HELD_BACK",
    "PROMPT",
    "REGISTER_POLICIES",
    "SECONDS_PER_IMAGE",
    "STAGES",
    "SplitPreview",
    "TrainPlan",
    "Verdict",
    "activate",
    "can_start_stage1",
    "child_env",
    "cli_prefix",
    "compare_models",
    "default_threads",
    "ensure_base_in_history",
    "estimate",
    "evaluate_on",
    "find_version",
    "fine_tune_base",
    "format_duration",
    "held_back_pairs",
    "model_arch",
    "model_facts",
    "model_meta",
    "model_styles",
    "new_run_dir",
    "plan_problem",
    "preview_split",
    "register_run",
    "resolved_device",
    "same_path",
    "seconds_per_image",
    "shipped_base",
    "stage2_exclude",
    "stage_args",
    "verdict",
    "version_name",
]
