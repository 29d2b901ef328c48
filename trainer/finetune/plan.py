"""What a fine-tune will do: the plan (base model, stage settings, split), the base model it
starts from, and the ``lungsam train`` arguments of each stage.

A fine-tune is Stage 1 (AdaLoRA from an FP32 base without adapters) then Stage 2 (QAT from
Stage 1's ``best/``), both on the project's latest CORRECTED masks with the same
patient-grouped hold-back split (:func:`trainer.data.split_pairs`, same fraction and seed),
writing under ``<project>/.lungsam/runs/<timestamp>/``. The stage settings are the forms of
:mod:`trainer.settings`, so the GUI's presets, the plan and the trainer's options are one thing.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import LungSamError
from engine.models import SHIPPED_BASE
from engine.project import runs_dir
from trainer.finetune.versions import same_path
from trainer.settings import Stage1Settings, Stage2Settings

DATA_CACHE = ".data-cache"
"""In the run folder: the trainer's decoded images (its default), removed when the run ends."""


@dataclass
class TrainPlan:
    """Everything the two stages are started with (written to the run's ``plan.json``)."""

    project: Path
    base_model: str
    stage1: Stage1Settings = field(default_factory=Stage1Settings)
    stage2: Stage2Settings = field(default_factory=Stage2Settings)
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    threads: int = 1
    style: str | None = None  # the mask style the corrections are drawn in (the user's)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["project"] = str(self.project)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainPlan:
        """The plan a run folder's ``plan.json`` records."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["project"] = Path(known["project"])
        known["stage1"] = Stage1Settings(**known.get("stage1", {})).validate()
        known["stage2"] = Stage2Settings(**known.get("stage2", {})).validate()
        return cls(**known)


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


def split_problem(split: SplitPreview) -> str | None:
    """Why a run on ``split`` cannot start (the trainer needs images on both sides), or None."""
    if split.val and split.train:
        return None
    return (f"{split.total} corrected image(s) of {split.groups} patient(s): nothing can be held back for "
            "the comparison; correct images of at least 2 patients first")


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


def shipped_base() -> str | None:
    """The shipped FP32 base (``lungsam-compact-base``), else any shipped model that can be a
    Stage 1 base; None when none is installed."""
    from engine.models import list_models

    shipped = [e for e in list_models() if e.shipped and can_start_stage1(e.path) is None]
    named = [e for e in shipped if e.name == SHIPPED_BASE]
    return str((named or shipped)[0].path) if shipped else None


def fine_tune_base(current: str | None, versions: list[dict[str, Any]]) -> str | None:
    """The FP32 model a new fine-tune starts from.

    The current model when it can be a Stage 1 base; else (the current model is a fine-tuned
    INT8 version) the base recorded in that version's provenance, so repeated fine-tunes
    always restart from the clean FP32 base on all corrected masks; else (an INT8 model of
    unknown or missing origin, or no model at all) the shipped FP32 base.
    """
    if current and can_start_stage1(current) is None:
        return current
    if current:
        for version in versions:
            if same_path(version["path"], current):
                base = version.get("provenance", {}).get("base_model")
                if base and _exists(base):
                    return str(base)
    return shipped_base()


# ----------------------------------------------------------------------------- commands


def _exists(spec: str) -> bool:
    from engine.models import resolve_model

    try:
        return resolve_model(spec).exists()
    except LungSamError:
        return False


def new_run_dir(project: Path) -> Path:
    """``.lungsam/runs/<YYYYmmdd-HHMMSS>`` (a suffix when two runs start in one second)."""
    root = runs_dir(project)
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


def stage_args(plan: TrainPlan, stage: str, model: str, out: Path, exclude: Path | None = None,
               style: str | None = None) -> list[str]:
    """Arguments of ``lungsam train stage1|stage2`` for ``plan`` (events on stdout); ``style``:
    the mask style the corrections follow, when the model has it."""
    args = [
        "train", stage, "--data", str(plan.project), "--val-fraction", repr(plan.val_fraction),
        "--model", str(model), "--out", str(out), "--events", "-", "--seed", str(plan.seed),
        "--device", plan.device, "--threads", str(plan.threads),
    ]  # decoded images are cached in RUN/.data-cache, shared by both stages (see DATA_CACHE)
    args += (plan.stage1 if stage == "stage1" else plan.stage2).to_argv()
    if style:
        args += ["--data-style", style]
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
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env["TQDM_DISABLE"] = "1"
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def default_threads() -> int:
    """Leave one core to the annotation window."""
    return max(1, (os.cpu_count() or 2) - 1)
