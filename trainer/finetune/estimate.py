"""How long a fine-tune will take: measured seconds per image, not a guess.

:data:`SECONDS_PER_IMAGE` holds seconds per image for one training step of each stage and for
one validation pass, per architecture and device, read off this project's 2-core CPU machines
(see the table's comment). The pane shows the estimate before Start and scales its ETA by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainer.finetune.plan import TrainPlan

HOURS_WARNING_S = 3600.0
"""A CPU run estimated above this gets a warning (e.g. SAM ViT-B without a GPU)."""

# Seconds per image, measured with a throwaway script (Trainer.train_step on a batch of real
# covidqu_ex images; evaluate_set for validation) on this project's CPU machine: 2 cores,
# AVX-512 BF16, torch 2.14.1, --threads 1, another training job running beside it, 2026-11-26.
#   compact (256 px, the trained base), batch 8: stage1 0.090, stage2 0.119, validation 0.049
#   vit_b (1024 px, random weights), batch 1: stage1 29.0, validation 43.7 (batch 2 ran out of
#   the machine's 24 GB); its stage2 is stage1 x 1.32, the ratio measured for compact.
#   compact-hr (the v3 default, compact plus the detail stem): compact's figures times the
#   ratios of `benchmarks/train_speed.py --pipeline` on the v2 (compact) and v3 bases run one
#   after the other, 2 threads, 2026-12-01: stage1 86 / 72 s, stage2 28 / 28 s; validation
#   times the embedding ratio at 2048 px (36.0 / 32.3 ms, benchmarks/latency_pair.py).
# No GPU machine was available to this task, so CUDA has no entry: the pane says "not
# measured" rather than inventing a number. Other architectures use the nearest by input size.
SECONDS_PER_IMAGE: dict[tuple[str, str], dict[str, float]] = {
    ("compact", "cpu"): {"stage1": 0.090, "stage2": 0.119, "val": 0.049},
    ("compact-hr", "cpu"): {"stage1": 0.090 * 86 / 72, "stage2": 0.119, "val": 0.049 * 36.0 / 32.3},
    ("vit_b", "cpu"): {"stage1": 29.0, "stage2": 38.3, "val": 43.7},
}
STARTUP_S = 8.0
"""Per stage: Python + torch import, model load, data decode of a few dozen images."""
EVAL_PER_IMAGE_FACTOR = 1.5
"""The end-of-run comparison embeds each held-back image at full resolution, twice (current
and new model): about 1.5 x the trainer's validation cost per image and model."""

def seconds_per_image(arch: str, device: str) -> dict[str, float] | None:
    """Measured costs for ``arch`` on ``device`` (cpu or cuda); None when never measured."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    if (arch, kind) in SECONDS_PER_IMAGE:
        return SECONDS_PER_IMAGE[(arch, kind)]
    if kind != "cpu":
        return None
    from engine.sam import named_configs

    cfg = named_configs().get(arch)
    big = cfg is None or cfg.img_size >= 1024  # medsam, vit_l/h: at least ViT-B's cost
    return SECONDS_PER_IMAGE[("vit_b" if big else "compact", "cpu")]


@dataclass(frozen=True)
class Estimate:
    seconds: float | None  # None: no measurement for this architecture/device
    stage_seconds: dict[str, float]
    device: str
    arch: str

    @property
    def warn(self) -> bool:
        return self.device == "cpu" and self.seconds is not None and self.seconds > HOURS_WARNING_S


def resolved_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def estimate(plan: TrainPlan, n_train: int, n_val: int, arch: str) -> Estimate:
    """Duration of both stages plus the comparison: trained images per epoch x epochs x cost."""
    device = resolved_device(plan.device)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    costs = seconds_per_image(arch, device)
    if costs is None:
        return Estimate(None, {}, kind, arch)
    stages = {}
    for name, preset in (("stage1", plan.stage1), ("stage2", plan.stage2)):
        steps = max(1, n_train // max(1, preset.batch_size))
        per_epoch = steps * preset.batch_size * costs[name] + n_val * costs["val"]
        stages[name] = STARTUP_S + preset.epochs * per_epoch
    stages["compare"] = 2 * n_val * costs["val"] * EVAL_PER_IMAGE_FACTOR
    return Estimate(sum(stages.values()), stages, kind, arch)


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


