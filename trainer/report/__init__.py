"""The HTML report of a training run (:mod:`~trainer.report.html_report`) and its plots
(:mod:`~trainer.report.plots`).
"""

from trainer.report.html_report import quantization_errors, training_curves, write_report

__all__ = [
    "quantization_errors",
    "training_curves",
    "write_report",
]
