"""Run one training stage end to end from a request (what the CLI and the GUI pane ask for)."""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from engine.atomic import atomic_write_bytes
from engine.device import resolve_device
from engine.errors import LungSamError, TrainingError
from engine.models import MODEL_JSON, SHIPPED_BASE, LoadedModel, load_model, shipped_models_dir
from engine.sam import preset
from trainer.data import (
    apply_style_names,
    concat_sets,
    find_pairs,
    load_set,
    sample_pairs,
    split_pairs,
    style_sets,
    token_of,
)
from trainer.settings import (
    BaseSettings,
    Stage1Settings,
    Stage2Settings,
    StageSettings,
    default_settings,
)
from trainer.training.events import EventWriter
from trainer.training.interactive import neutral_mask_prompt, never_trained_on_clicks
from trainer.training.loop import DistInfo, LoopConfig, Trainer, check_disk_space, init_distributed
from trainer.training.provenance import provenance
from trainer.training.stages import (
    BaseStageConfig,
    Stage1Config,
    Stage2Config,
    base_stage,
    scaled_prune_epochs,
    stage1,
    stage2,
    start_model,
    trainable_summary,
)

log = logging.getLogger(__name__)


@dataclass
class TrainRequest:
    """What one ``lungsam train`` run is asked to do.

    The stage's own settings (epochs, batch size, learning rates, ranks) are one
    :mod:`trainer.settings` object; ``None`` means the stage's defaults. Every other
    field is about data and the run, and ``None`` means "not given" (never ``0``).
    """

    stage: str
    data: Path
    out: Path
    val: Path | None = None
    model: str | None = None
    arch: str | None = None
    settings: StageSettings | None = None
    device: str = "auto"
    resume: bool = False
    interactive: bool = True  # corrective-click rounds and points-only prompts (trainer.training.interactive)
    events: str | None = None
    seed: int = 0
    threads: int | None = None
    val_limit: int | None = None
    val_fraction: float | None = None
    exclude: Path | None = None
    cache_dir: Path | None = None
    storage_dtype: str = "float32"
    progress: bool = True
    log_every: int | None = None
    styles: list[str] | None = None
    data_style: str | None = None
    style_data: list[tuple[str, Path]] | None = None
    style_val: list[tuple[str, Path]] | None = None
    style_repeat: int = 1

    def stage_settings(self) -> StageSettings:
        """The settings this run trains with (the stage's defaults when none were given)."""
        settings = self.settings if self.settings is not None else default_settings(self.stage)
        if settings.stage != self.stage:
            raise TrainingError(f"{type(settings).__name__} are not settings of {self.stage}")
        return settings.validate()

    def check(self) -> None:
        """Refuse run options the trainer cannot use (``0`` threads, a fraction outside 0..1)."""
        for name in ("threads", "val_limit", "log_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
        if self.val_fraction is not None and not 0 < self.val_fraction < 1:
            raise TrainingError(f"--val-fraction must lie strictly between 0 and 1 (got {self.val_fraction})")
        if self.style_repeat < 1:
            raise TrainingError(f"--style-repeat must be at least 1 (got {self.style_repeat})")


DEFAULT_VAL_FRACTION = 0.2
"""Held back for validation when no --val folder (or --val-fraction) is given."""


def start_model_spec(stage: str, model: str | None) -> str | None:
    """The model a stage starts from: ``--model`` as given, a run folder's ``best`` model, or
    for Stage 1 without ``--model`` the shipped FP32 base. Base training may start from
    nothing (``--arch``); Stage 2 needs Stage 1's output."""
    if model is None:
        if stage == "stage1":
            shipped = shipped_models_dir() / SHIPPED_BASE
            if (shipped / MODEL_JSON).is_file():
                return str(shipped)
            raise TrainingError(f"stage1 needs --model: the shipped FP32 base {SHIPPED_BASE} is not installed")
        if stage == "stage2":
            raise TrainingError("stage2 needs --model (the Stage 1 run folder or its best model)")
        return None
    folder = Path(model).expanduser()
    if folder.is_dir() and not (folder / MODEL_JSON).is_file() and (folder / "best" / MODEL_JSON).is_file():
        return str(folder / "best")  # a run folder means its best model
    return model


def state_digest(model: torch.nn.Module) -> str:
    """sha256 over every tensor of the state dict, in key order."""
    import hashlib

    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def dist_world() -> int:
    from trainer.training.loop import DistInfo

    return DistInfo.current().world_size


# covid_chestxray_gb/overlap_with_covidqu_ex.csv scores every image against COVID-QU-Ex;
# rows at or above this thumbnail correlation are the near-duplicates (54 of 98).
OVERLAP_MIN_CORR = 0.95


def carry_box_head(base: LoadedModel, folders: list[Path]) -> None:
    """A trained model keeps its base's box head (zero-click): the encoder moved a little, and
    the proposer's refinement by the model's own masks absorbs that (engine.propose)."""
    from engine.models import save_box_head

    for folder in folders:
        if (folder / "model.json").is_file():
            save_box_head(folder, base.box_head, {"carried_from": base.name})  # type: ignore[arg-type]


def read_exclude(path: Path | None) -> list[str]:
    """Image names to leave out: a text file (one per line) or a CSV (first column).

    A CSV with a ``thumb_corr`` column (the overlap list of covid_chestxray_gb) only
    excludes rows with ``thumb_corr >= 0.95``, the near-duplicates.
    """
    if path is None:
        return []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.reader(handle) if r]
    except OSError as exc:
        raise TrainingError(f"{path}: cannot read the exclude list ({exc})") from exc
    if not rows:
        return []
    header = [h.strip() for h in rows[0]]
    if "thumb_corr" in header:
        col = header.index("thumb_corr")
        return [r[0].strip() for r in rows[1:] if len(r) > col and float(r[col]) >= OVERLAP_MIN_CORR]
    names = [r[0].strip() for r in rows]
    if names and "." not in names[0]:
        names = names[1:]
    return names


def run_stage(req: TrainRequest) -> Path:
    """Train, emitting events; returns the run folder. Failures emit ``failed`` and re-raise."""
    device = resolve_device(req.device)
    dist = init_distributed(device)
    if dist.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", dist.rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    events = EventWriter(req.events, req.out / "events.jsonl", stage=req.stage, enabled=dist.is_main)
    try:
        return _run(req, events, device)
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
        if is_disk_full(exc):
            message = (f"the disk is full (writing to {req.out}); earlier results are kept: "
                       "the last complete checkpoint and best model")
            events.emit("failed", reason=message)
            raise TrainingError(message) from exc
        events.emit("failed", reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        events.close()


_TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.[^.]+\.tmp$")  # engine.atomic.atomic_write_with
_TEMP_DIR = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-[0-9a-f]{8}$")  # atomic_directory


def recover_run_folder(run_dir: Path) -> list[str]:
    """Tidy what a killed writer left in ``run_dir``; returns what was removed or restored.

    Files are only ever replaced atomically, so a kill leaves temporary files (half-written
    checkpoints, half-built model folders, each as large as the model) but never a damaged
    result. A model folder caught between its two renames exists only as ``.NAME.old-*``: it
    is put back, so the best model is never lost. Runs before the free-space check, so the
    space these files took counts as free.
    """
    done: list[str] = []
    if not run_dir.is_dir():
        return done
    for entry in sorted(run_dir.iterdir()):
        folder = _TEMP_DIR.match(entry.name) if entry.is_dir() else None
        if folder and folder["kind"] == "old" and not (run_dir / folder["name"]).exists():
            os.replace(entry, run_dir / folder["name"])
            done.append(f"restored {folder['name']}")
        elif folder:
            shutil.rmtree(entry, ignore_errors=True)
            done.append(f"removed {entry.name}")
        elif entry.is_file() and _TEMP_FILE.match(entry.name):
            entry.unlink(missing_ok=True)
            done.append(f"removed {entry.name}")
    return done


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_DISK_FULL_TEXT = ("no space left", "file too large", "disk quota", "failed writing file")


def is_disk_full(exc: BaseException) -> bool:
    """True when an exception (or its cause) is the disk or file-size limit running out.

    torch.save and safetensors report a full disk as RuntimeError text, not OSError.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _DISK_FULL_ERRNOS:
            return True
        if any(t in str(seen).lower() for t in _DISK_FULL_TEXT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _run(req: TrainRequest, events: EventWriter, device: torch.device) -> Path:
    req.check()
    settings = req.stage_settings()
    if req.threads is not None:
        torch.set_num_threads(req.threads)
    if req.out.exists() and any(req.out.iterdir()) and not req.resume:
        if (req.out / "checkpoint.pt").exists():
            raise TrainingError(f"{req.out}: a run already exists there; use --resume or another --out")
    if DistInfo.current().is_main:
        for what in recover_run_folder(req.out):
            log.info("%s: %s (left by an interrupted run)", req.out, what)
    check_disk_space(req.out, 200 << 20)
    model_spec = start_model_spec(req.stage, req.model)
    base = load_model(model_spec) if model_spec else None
    if base is not None and base.is_int8:
        raise TrainingError(f"{base.name} is an INT8 deployment model; train from its FP32 version")
    model, config = start_model(base, preset(req.arch) if req.arch else None)
    cache = req.cache_dir or req.out.parent / ".data-cache"
    exclude = read_exclude(req.exclude)
    train_pairs = find_pairs(req.data, exclude)
    if req.val is None or req.val_fraction is not None:
        fraction = DEFAULT_VAL_FRACTION if req.val_fraction is None else req.val_fraction
        train_pairs, val_pairs = split_pairs(train_pairs, fraction, req.seed)
        if not val_pairs or not train_pairs:
            raise TrainingError(f"{req.data}: too few images to hold some back for validation")
    else:
        val_pairs = find_pairs(req.val, exclude)
    if req.val_limit is not None:
        val_pairs = sample_pairs(val_pairs, req.val_limit, req.seed)
    events.emit("loading", train_pairs=len(train_pairs), val_pairs=len(val_pairs))
    styles = apply_style_names(model, list(req.styles or []), req.stage)
    main_token = token_of(styles, req.data_style)
    train = load_set(train_pairs, config.img_size, cache).with_style(main_token)
    val = load_set(val_pairs, config.img_size, cache).with_style(main_token)
    extra_train, extra_val = style_sets(
        list(req.style_data or []), list(req.style_val or []), styles,
        lambda folder: find_pairs(folder, exclude), lambda pairs: load_set(pairs, config.img_size, cache),
        req.style_repeat, req.seed,
    )
    train, val = concat_sets([train, *extra_train]), concat_sets([val, *extra_val])
    for name, reason in train.skipped + val.skipped:
        events.emit("warning", file=name, reason=reason)
    loop = LoopConfig(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=req.seed,
        threads=req.threads,
        log_every=LoopConfig.log_every if req.log_every is None else req.log_every,
        max_clicks=LoopConfig.max_clicks if req.interactive else 0,
        point_fraction=LoopConfig.point_fraction if req.interactive else 0.0,
    )
    torch.manual_seed(req.seed)
    data_info = {
        "train": str(req.data), "val": str(req.val), "train_images": len(train),
        "val_images": len(val), "skipped": len(train.skipped) + len(val.skipped),
        "excluded": len(exclude), "mask_styles": styles,
        "style_data": {name: str(folder) for name, folder in req.style_data or []},
        "style_repeat": req.style_repeat,
    }
    prov = provenance(req.stage, data_info, {"loop": asdict(loop), "settings": settings.to_dict()},
                      model_spec or req.arch)
    steps_per_epoch = max(1, len(train) // (loop.batch_size * dist_world()))
    if isinstance(settings, BaseSettings):
        cfg = BaseStageConfig(lr=settings.lr, storage_dtype=req.storage_dtype)
        groups, hooks = base_stage(model, config, cfg, prov)
    elif isinstance(settings, Stage1Settings):
        cfg1 = Stage1Config(adapter_lr=settings.adapter_lr, decoder_lr=settings.decoder_lr, r_max=settings.rank_max,
                            target_rank=settings.rank_target, prune_epochs=scaled_prune_epochs(loop.epochs),
                            storage_dtype=req.storage_dtype)
        if base is not None and never_trained_on_clicks(base.meta):
            neutral_mask_prompt(model.prompt_encoder)  # type: ignore[arg-type]  # nn.Module.__getattr__
        groups, hooks = stage1(model, config, cfg1, loop.epochs, steps_per_epoch, prov)
    else:
        assert isinstance(settings, Stage2Settings)
        cfg2 = Stage2Config(train_decoder=settings.train_decoder, lambda_lr=settings.lambda_lr,
                            decoder_lr=settings.decoder_lr)
        groups, hooks = stage2(model, config, cfg2, prov)
    params = trainable_summary(model)
    events.emit("model", **params, base_model=model_spec or req.arch, mask_styles=styles)
    trainer = Trainer(model, config, groups, train, val, req.out, loop, events, hooks, device, req.progress)
    if req.resume:
        trainer.resume()
    history = trainer.run()
    if trainer.dist.is_main and base is not None and base.box_head is not None:
        carry_box_head(base, [req.out / "best", req.out / "int8"])
    summary = {
        "stage": req.stage, "best_epoch": history.best_epoch, "best_score": history.best_score,
        "epochs": history.epochs, "data": data_info, "skipped": train.skipped + val.skipped,
        "base_model": model_spec or req.arch, "fp32_model": str(req.out / "best"), **params,
        "train_names": train.names, "val_names": val.names,
    }
    if (req.out / "int8").is_dir():
        summary["int8_model"] = str(req.out / "int8")
    if trainer.dist.is_main:
        atomic_write_bytes(req.out / "summary.json", json.dumps(summary, indent=2).encode())
    if trainer.dist.world_size > 1:  # lets anyone check that every rank ended identical
        digest = state_digest(model)
        atomic_write_bytes(req.out / "ddp" / f"rank{trainer.dist.rank}.sha256", digest.encode())
    events.emit("done", best=str(req.out / "best"), best_epoch=history.best_epoch, best_score=history.best_score)
    return req.out
