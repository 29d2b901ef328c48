"""Evaluation: one loop that scores a model on image/mask pairs at the original resolution
(:mod:`~trainer.evaluation.evaluate`), the mask metrics (:mod:`~trainer.evaluation.metrics`)
and paired statistics (Wilcoxon) between two models (:mod:`~trainer.evaluation.stats`).
"""

from trainer.evaluation.clicks import click_curve, evaluate_clicks, format_clicks
from trainer.evaluation.evaluate import (
    EvalResult,
    evaluate_model,
    evaluate_pairs,
    json_safe,
    load_ground_truth,
    prompt_boxes,
)
from trainer.evaluation.metrics import boundary, dice, hd95, iou, mask_metrics, precision, recall
from trainer.evaluation.perturb import PERTURBATIONS
from trainer.evaluation.stats import compare_results, format_comparison, paired_test

__all__ = [
    "PERTURBATIONS",
    "click_curve",
    "evaluate_clicks",
    "format_clicks",
    "EvalResult",
    "boundary",
    "compare_results",
    "dice",
    "evaluate_model",
    "evaluate_pairs",
    "format_comparison",
    "hd95",
    "iou",
    "json_safe",
    "load_ground_truth",
    "mask_metrics",
    "paired_test",
    "precision",
    "prompt_boxes",
    "recall",
]
