"""LungSAM trainer: datasets, prompts, losses, stages, evaluation (no Qt).

Sub-packages: :mod:`trainer.data`, :mod:`trainer.training`, :mod:`trainer.evaluation` and
:mod:`trainer.report`.
"""
