"""AdaLoRA (paper Eq. 1, 4), split as peft splits it: the config and the SVD-form layer
(:mod:`~engine.adalora.layer`), wrapping a model and the operations on all its adapters
(:mod:`~engine.adalora.model`), and the rank allocator fed by the training loop
(:mod:`~engine.adalora.rank_allocator`). The layer knows nothing about schedules.
"""

from engine.adalora.layer import (
    QKV_PATTERN,
    QKV_PROJ_MLP_PATTERN,
    AdaLoraConfig,
    AdaLoraLinear,
    adalora_config_from_dict,
    adalora_config_to_dict,
)
from engine.adalora.model import (
    adalora_parameters,
    adapter_modules,
    apply_rank_pattern,
    count_trainable,
    freeze_rank_masks,
    lambda_parameters,
    merge_adalora,
    orthogonal_regularizer,
    rank_pattern,
    wrap_adalora,
    zero_masked_lambda,
)
from engine.adalora.rank_allocator import CubicSchedule, EventSchedule, RankAllocator

__all__ = [
    "AdaLoraConfig",
    "AdaLoraLinear",
    "CubicSchedule",
    "EventSchedule",
    "QKV_PATTERN",
    "QKV_PROJ_MLP_PATTERN",
    "RankAllocator",
    "adalora_config_from_dict",
    "adalora_config_to_dict",
    "adalora_parameters",
    "adapter_modules",
    "apply_rank_pattern",
    "count_trainable",
    "freeze_rank_masks",
    "lambda_parameters",
    "merge_adalora",
    "orthogonal_regularizer",
    "rank_pattern",
    "wrap_adalora",
    "zero_masked_lambda",
]
