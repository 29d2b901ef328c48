"""Run one training stage end to end from a request (what the CLI and the GUI pane ask for)."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from engine.device import resolve_device
from engine.errors import LungSamError, TrainingError
from engine.registry import load_model
from engine.sam_config import preset
from trainer.data import find_pairs, load_set
from trainer.events import EventWriter
from trainer.loop import LoopConfig, Trainer, check_disk_space
from trainer.provenance import provenance
from trainer.stages import BaseStageConfig, base_stage, start_model

log = logging.getLogger(__name__)


@dataclass
class TrainRequest:
    stage: str
    data: Path
    val: Path
    out: Path
    model: str | None = None
    arch: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    device: str = "auto"
    resume: bool = False
    events: str | None = None
    seed: int = 0
    threads: int | None = None
    val_limit: int | None = None
    exclude: Path | None = None
    cache_dir: Path | None = None
    storage_dtype: str = "float32"
    progress: bool = True


def read_exclude(path: Path | None) -> list[str]:
    """First column of a CSV (header skipped if it is not a file name) or one name per line."""
    if path is None:
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.reader(handle) if r]
    names = [r[0].strip() for r in rows]
    if names and "." not in names[0]:
        names = names[1:]
    return names


def run_stage(req: TrainRequest) -> Path:
    """Train, emitting events; returns the run folder. Failures emit ``failed`` and re-raise."""
    events = EventWriter(req.events, stage=req.stage)
    try:
        return _run(req, events)
    except LungSamError as exc:
        events.emit("failed", reason=str(exc))
        raise
    except MemoryError as exc:
        events.emit("failed", reason="out of memory")
        raise TrainingError("training ran out of memory; lower --batch-size") from exc
    except KeyboardInterrupt:
        events.emit("failed", reason="cancelled")
        raise
    except Exception as exc:
        events.emit("failed", reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        events.close()


def _run(req: TrainRequest, events: EventWriter) -> Path:
    device = resolve_device(req.device)
    if req.threads:
        torch.set_num_threads(req.threads)
    if req.out.exists() and any(req.out.iterdir()) and not req.resume:
        if (req.out / "checkpoint.pt").exists():
            raise TrainingError(f"{req.out}: a run already exists there; use --resume or another --out")
    check_disk_space(req.out, 200 << 20)
    base = load_model(req.model) if req.model else None
    model, config = start_model(base, preset(req.arch) if req.arch else None)
    cache = req.cache_dir or req.out.parent / ".data-cache"
    exclude = read_exclude(req.exclude)
    train_pairs = find_pairs(req.data, exclude)
    val_pairs = find_pairs(req.val, exclude)
    if req.val_limit:
        val_pairs = val_pairs[: req.val_limit]
    events.emit("loading", train_pairs=len(train_pairs), val_pairs=len(val_pairs))
    train = load_set(train_pairs, config.img_size, cache)
    val = load_set(val_pairs, config.img_size, cache)
    for name, reason in train.skipped + val.skipped:
        events.emit("warning", file=name, reason=reason)
    defaults = {"base": (30, 16)}[req.stage]
    loop = LoopConfig(
        epochs=req.epochs or defaults[0],
        batch_size=req.batch_size or defaults[1],
        seed=req.seed,
        threads=req.threads,
    )
    torch.manual_seed(req.seed)
    data_info = {
        "train": str(req.data), "val": str(req.val), "train_images": len(train),
        "val_images": len(val), "skipped": len(train.skipped) + len(val.skipped),
        "excluded": len(exclude),
    }
    stage_cfg = BaseStageConfig(lr=req.lr or BaseStageConfig.lr, storage_dtype=req.storage_dtype)
    prov = provenance(req.stage, data_info, {"loop": asdict(loop)}, req.model or req.arch)
    groups, hooks = base_stage(model, config, stage_cfg, prov)
    trainer = Trainer(model, config, groups, train, val, req.out, loop, events, hooks, device, req.progress)
    if req.resume:
        trainer.resume()
    history = trainer.run()
    summary = {
        "stage": req.stage, "best_epoch": history.best_epoch, "best_score": history.best_score,
        "epochs": history.epochs, "data": data_info, "skipped": train.skipped + val.skipped,
    }
    (req.out / "summary.json").write_text(json.dumps(summary, indent=2))
    events.emit("done", best=str(req.out / "best"), best_epoch=history.best_epoch, best_score=history.best_score)
    return req.out
