"""What a fine-tuning run from the trainer pane will do: presets, split, duration, commands.

Qt-free. A fine-tune is two ``lungsam train`` subprocesses in sequence (Stage 1 AdaLoRA from
an FP32 base without adapters, then Stage 2 QAT from Stage 1's ``best/``), both on the
project's latest CORRECTED masks with the same patient-grouped hold-back split
(:func:`trainer.data.datasets.split_pairs`, same fraction and seed), writing under
``<project>/.lungsam/runs/<timestamp>/``.

The duration estimate is measured, not guessed: :data:`SECONDS_PER_IMAGE` holds seconds per
image for one training step of each stage and for one validation pass, per architecture and
device, read off this project's 2-core CPU machines (see the table's comment).
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.gui.trainer.model_versions import same_path
from engine.errors import LungSamError
from engine.project import runs_dir
from trainer.training import STAGE_DEFAULTS, Stage1Config, Stage2Config

DATA_CACHE = ".data-cache"
"""In the run folder: the trainer's decoded images (its default), removed when the run ends."""
HOURS_WARNING_S = 3600.0
"""A CPU run estimated above this gets a warning (e.g. SAM ViT-B without a GPU)."""

# Seconds per image, measured with a throwaway script (Trainer.train_step on a batch of real
# covidqu_ex images; evaluate_set for validation) on this project's CPU machine: 2 cores,
# AVX-512 BF16, torch 2.14.1, --threads 1, another training job running beside it, 2026-11-26.
#   compact (256 px, the trained base), batch 8: stage1 0.090, stage2 0.119, validation 0.049
#   vit_b (1024 px, random weights), batch 1: stage1 29.0, validation 43.7 (batch 2 ran out of
#   the machine's 24 GB); its stage2 is stage1 x 1.32, the ratio measured for compact.
# No GPU machine was available to this task, so CUDA has no entry: the pane says "not
# measured" rather than inventing a number. Other architectures use the nearest by input size.
SECONDS_PER_IMAGE: dict[tuple[str, str], dict[str, float]] = {
    ("compact", "cpu"): {"stage1": 0.090, "stage2": 0.119, "val": 0.049},
    ("vit_b", "cpu"): {"stage1": 29.0, "stage2": 38.3, "val": 43.7},
}
STARTUP_S = 8.0
"""Per subprocess: Python + torch import, model load, data decode of a few dozen images."""
EVAL_PER_IMAGE_FACTOR = 1.5
"""The end-of-run comparison embeds each held-back image at full resolution, twice (current
and new model): about 1.5 x the trainer's validation cost per image and model."""


@dataclass
class Stage1Preset:
    """AdaLoRA fine-tuning (defaults = :class:`trainer.training.stages.Stage1Config` and STAGE_DEFAULTS)."""

    epochs: int = STAGE_DEFAULTS["stage1"][0]
    batch_size: int = STAGE_DEFAULTS["stage1"][1]
    adapter_lr: float = Stage1Config.adapter_lr
    decoder_lr: float = Stage1Config.decoder_lr
    r_max: int = Stage1Config.r_max
    target_rank: int = Stage1Config.target_rank

    @classmethod
    def paper(cls) -> Stage1Preset:
        paper = Stage1Config.paper()
        return cls(adapter_lr=paper.adapter_lr, decoder_lr=paper.decoder_lr)


@dataclass
class Stage2Preset:
    """QAT: rank masks frozen, only the singular values (Lambda) train."""

    epochs: int = STAGE_DEFAULTS["stage2"][0]
    batch_size: int = STAGE_DEFAULTS["stage2"][1]
    lambda_lr: float = Stage2Config.lambda_lr


@dataclass
class TrainPlan:
    """Everything the two subprocesses are started with."""

    project: Path
    base_model: str
    stage1: Stage1Preset = field(default_factory=Stage1Preset)
    stage2: Stage2Preset = field(default_factory=Stage2Preset)
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["project"] = str(self.project)
        return data


@dataclass(frozen=True)
class SplitPreview:
    """The split the run will use: image names (project-relative) on each side."""

    train: list[str]
    val: list[str]
    groups: int  # patients (or single images without a PatientID)

    @property
    def total(self) -> int:
        return len(self.train) + len(self.val)


def preview_split(project: Path, val_fraction: float, seed: int = 0) -> SplitPreview:
    """The trainer's own split of the project's corrected masks (same functions, same seed)."""
    from trainer.data import patient_key, project_pairs, split_pairs

    pairs = project_pairs(Path(project))  # raises TrainingError when nothing is corrected
    train, val = split_pairs(pairs, val_fraction, seed)
    groups = len({patient_key(p) for p in pairs})
    return SplitPreview([p.name for p in train], [p.name for p in val], groups)


# ----------------------------------------------------------------------------- models


def model_meta(spec: str | Path) -> dict[str, Any] | None:
    """``model.json`` of a model folder (None for a .pth file or an unreadable folder)."""
    from engine.models import read_model_json, resolve_model

    try:
        path = resolve_model(str(spec))
        return read_model_json(path) if path.is_dir() else None
    except LungSamError:
        return None


def model_arch(spec: str | Path) -> str:
    """Architecture name of a model (``compact``, ``vit_b``...) without loading its weights."""
    meta = model_meta(spec)
    if meta is not None:
        return str(meta.get("config", {}).get("name") or "custom")
    name = Path(str(spec)).name.lower()
    for arch in ("vit_h", "vit_l", "medsam", "vit_b"):
        if arch in name:
            return arch
    return "vit_b"  # official SAM checkpoints are ViT-B unless named otherwise


def can_start_stage1(spec: str | Path) -> str | None:
    """Why ``spec`` cannot be a Stage 1 base (INT8 or already adapted), or None when it can."""
    meta = model_meta(spec)
    if meta is None:
        return None  # an official .pth: FP32, no adapters
    if meta.get("int8"):
        return "it is an INT8 deployment model"
    if meta.get("adapter") or meta.get("merged_adapter"):
        return "it already carries AdaLoRA adapters"
    return None


def fine_tune_base(current: str | None, versions: list[dict[str, Any]]) -> str | None:
    """The FP32 model a new fine-tune starts from.

    The current model when it can be a Stage 1 base; else (the current model is a fine-tuned
    INT8 version) the base recorded in that version's provenance, so repeated fine-tunes
    always restart from the clean FP32 base on all corrected masks.
    """
    if current and can_start_stage1(current) is None:
        return current
    if current:
        for version in versions:
            if same_path(version["path"], current):
                base = version.get("provenance", {}).get("base_model")
                if base:
                    return str(base)
    return None


# ----------------------------------------------------------------------------- duration


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


# ----------------------------------------------------------------------------- commands


def runs_root(project: Path) -> Path:
    return runs_dir(project)


def new_run_dir(project: Path) -> Path:
    """``.lungsam/runs/<YYYYmmdd-HHMMSS>`` (a suffix when two runs start in one second)."""
    root = runs_root(project)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run = root / stamp
    k = 1
    while run.exists():
        run = root / f"{stamp}-{k}"
        k += 1
    return run


def cli_prefix() -> list[str]:
    """How to start ``lungsam``: this interpreter with ``-m app.cli`` (works from a source tree)."""
    return [sys.executable, "-m", "app.cli"]


def stage_args(plan: TrainPlan, stage: str, model: str, out: Path, exclude: Path | None = None) -> list[str]:
    """Arguments of ``lungsam train stage1|stage2`` for ``plan`` (events on stdout)."""
    args = [
        "train", stage, "--data", str(plan.project), "--val-fraction", repr(plan.val_fraction),
        "--model", str(model), "--out", str(out), "--events", "-", "--seed", str(plan.seed),
        "--device", plan.device, "--threads", str(plan.threads),
    ]  # decoded images are cached in RUN/.data-cache, shared by both stages (see DATA_CACHE)
    if stage == "stage1":
        p1 = plan.stage1
        args += ["--epochs", str(p1.epochs), "--batch-size", str(p1.batch_size),
                 "--adapter-lr", repr(p1.adapter_lr), "--decoder-lr", repr(p1.decoder_lr),
                 "--rank-max", str(p1.r_max), "--rank-target", str(p1.target_rank)]
    else:
        p2 = plan.stage2
        args += ["--epochs", str(p2.epochs), "--batch-size", str(p2.batch_size),
                 "--lambda-lr", repr(p2.lambda_lr)]
    if exclude is not None:
        args += ["--exclude", str(exclude)]
    return args


def stage2_exclude(plan: TrainPlan, stage1_summary: dict[str, Any], out: Path) -> Path | None:
    """Keep Stage 2 on Stage 1's exact images and split while the clinician keeps correcting.

    Images corrected after Stage 1 started are written to an exclude list (so the split, a
    deterministic function of the image set, is the same); if images Stage 1 used are no
    longer corrected, the split cannot be reproduced and a :class:`LungSamError` says so.
    """
    from trainer.data import project_pairs, split_pairs

    train_names, val_names = set(stage1_summary.get("train_names", [])), set(stage1_summary.get("val_names", []))
    skipped = {str(item[0]) for item in stage1_summary.get("skipped", []) if item}  # unusable pairs
    used = train_names | val_names | skipped
    pairs = project_pairs(plan.project)
    now = {p.name for p in pairs}
    gone = used - now
    if gone:
        raise LungSamError(
            f"{len(gone)} image(s) Stage 1 trained on are no longer corrected (e.g. {sorted(gone)[0]}); "
            "start the run again"
        )
    new = sorted(now - used)
    exclude = None
    if new:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["image"])  # a header: read_exclude drops a first line without a dot
        for name in new:
            writer.writerow([name])
        exclude = out.parent / "stage2-exclude.csv"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text(buffer.getvalue(), encoding="utf-8")
        skip = {Path(n).stem for n in new}
        pairs = [p for p in pairs if Path(p.name).stem not in skip]
    train, val = split_pairs(pairs, plan.val_fraction, plan.seed)
    if {p.name for p in val} - skipped != val_names or {p.name for p in train} - skipped != train_names:
        raise LungSamError("the corrected images changed during Stage 1 so the split cannot be kept; start again")
    return exclude


def child_env(threads: int) -> dict[str, str]:
    """Environment of a trainer subprocess: unbuffered, no tqdm bars, the pane's thread count,
    and this source tree importable."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env["TQDM_DISABLE"] = "1"
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def default_threads() -> int:
    """Leave one core to the annotation window."""
    return max(1, (os.cpu_count() or 2) - 1)
