"""LungSAM trainer: datasets, prompts, losses, stages, evaluation (no Qt)."""
