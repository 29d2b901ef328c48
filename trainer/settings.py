"""The settings form of each stage: one dataclass per stage (base, Stage 1, Stage 2) with its
defaults and its validation.

These are the one place a stage's user-facing settings live. The CLI builds its options from
the fields (:func:`add_settings_arguments`, :func:`settings_from_args`), the GUI's presets are
instances (``Stage1Settings()``, ``Stage1Settings.paper()``), the fine-tune plan writes them
back as arguments (:meth:`StageSettings.to_argv`) and the trainer reads them from
:class:`trainer.training.run.TrainRequest`. ``None`` means "not given" only at the CLI edge
(argparse); a settings object is always complete, so a ``0`` is a value, and an invalid one
is refused by :meth:`StageSettings.validate` with the option's name, never taken as "unset".

A top-level module of the trainer, importing nothing heavy: ``lungsam --help`` builds its
options from here without importing torch. The learning-rate and rank defaults mirror the
stage configs of :mod:`trainer.training.stages` (what a stage does when built without a form);
tests/trainer/test_settings.py keeps the two equal.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from engine.errors import TrainingError

PAPER_ADAPTER_LR, PAPER_DECODER_LR = 5e-5, 2e-5
"""The paper's Stage 1 learning rates (``Stage1Config.paper()``)."""


def _opt(help_text: str, minimum: float | None = None, positive: bool = False) -> Any:
    """Field metadata: the CLI help and the bound :meth:`StageSettings.validate` checks."""
    return {"help": help_text, "min": minimum, "positive": positive}


@dataclass(frozen=True)
class StageSettings:
    """Settings every stage has: how long and in which batches it trains."""

    stage: ClassVar[str] = ""
    epochs: int = field(default=1, metadata=_opt("epochs to train", minimum=1))
    batch_size: int = field(default=1, metadata=_opt("images per optimiser step", minimum=1))

    def validate(self) -> StageSettings:
        """Refuse values the trainer cannot use, naming the CLI option; returns self."""
        for f in fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            flag = option_name(f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if meta.get("positive") and not (math.isfinite(value) and value > 0):
                raise TrainingError(f"{flag} must be a positive number (got {value})")
            if meta.get("min") is not None and value < meta["min"]:
                raise TrainingError(f"{flag} must be at least {meta['min']:g} (got {value})")
        return self

    def with_values(self, **values: Any) -> StageSettings:
        """A copy with the given values (``None`` keeps the current one), validated."""
        return replace(self, **{k: v for k, v in values.items() if v is not None}).validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_argv(self) -> list[str]:
        """The ``lungsam train`` options that reproduce these settings exactly."""
        argv: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                argv += [option_name(f.name)] if value else []
            else:
                argv += [option_name(f.name), repr(value) if isinstance(value, float) else str(value)]
        return argv


@dataclass(frozen=True)
class BaseSettings(StageSettings):
    """Stage 0: every parameter trains, from scratch (``--arch``) or from a checkpoint."""

    stage: ClassVar[str] = "base"
    epochs: int = field(default=30, metadata=_opt("epochs to train", minimum=1))
    batch_size: int = field(default=16, metadata=_opt("images per optimiser step", minimum=1))
    lr: float = field(default=4e-4, metadata=_opt("base: learning rate", positive=True))


@dataclass(frozen=True)
class Stage1Settings(StageSettings):
    """Stage 1: AdaLoRA adapters on the encoder, decoder fine-tuned, ranks pruned to a budget."""

    stage: ClassVar[str] = "stage1"
    epochs: int = field(default=15, metadata=_opt("epochs to train", minimum=1))
    batch_size: int = field(default=8, metadata=_opt("images per optimiser step", minimum=1))
    adapter_lr: float = field(default=1e-3,
                              metadata=_opt("stage1: AdaLoRA learning rate", positive=True))
    decoder_lr: float = field(default=1e-4,
                              metadata=_opt("stage1/2: mask decoder learning rate", positive=True))
    rank_max: int = field(default=48,
                          metadata=_opt("stage1: initial AdaLoRA rank per layer (paper 48)", minimum=1))
    rank_target: int = field(default=32,
                             metadata=_opt("stage1: average rank after pruning (paper 32)", minimum=1))

    @classmethod
    def paper(cls) -> Stage1Settings:
        """The paper's learning rates (SAM ViT-B on 64k images), our epochs and ranks."""
        return cls(adapter_lr=PAPER_ADAPTER_LR, decoder_lr=PAPER_DECODER_LR)

    def with_values(self, **values: Any) -> StageSettings:
        """As for every stage; a smaller ``rank_max`` alone pulls the target down with it."""
        if values.get("rank_max") is not None and values.get("rank_target") is None:
            values["rank_target"] = min(self.rank_target, values["rank_max"])
        return super().with_values(**values)

    def validate(self) -> Stage1Settings:
        super().validate()
        if self.rank_target > self.rank_max:
            raise TrainingError(f"--rank-target {self.rank_target} must lie in 1..--rank-max {self.rank_max}")
        return self


@dataclass(frozen=True)
class Stage2Settings(StageSettings):
    """Stage 2: quantization-aware training; rank masks frozen, only Lambda trains."""

    stage: ClassVar[str] = "stage2"
    epochs: int = field(default=5, metadata=_opt("epochs to train", minimum=1))
    batch_size: int = field(default=8, metadata=_opt("images per optimiser step", minimum=1))
    lambda_lr: float = field(default=1e-6,
                             metadata=_opt("stage2: learning rate of the singular values", positive=True))
    decoder_lr: float = field(default=1e-5,
                              metadata=_opt("stage1/2: mask decoder learning rate", positive=True))
    train_decoder: bool = field(default=False,
                                metadata=_opt("stage2: also train the decoder"))


SETTINGS: dict[str, type[StageSettings]] = {"base": BaseSettings, "stage1": Stage1Settings, "stage2": Stage2Settings}
"""The settings class of each stage."""


def option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def default_settings(stage: str) -> StageSettings:
    if stage not in SETTINGS:
        raise TrainingError(f"unknown stage {stage!r} (one of {', '.join(SETTINGS)})")
    return SETTINGS[stage]()


def settings_for(stage: str, preset: str = "default", **values: Any) -> StageSettings:
    """The stage's defaults (or the ``paper`` preset for Stage 1), with ``values`` over them."""
    base = Stage1Settings.paper() if stage == "stage1" and preset == "paper" else default_settings(stage)
    unknown = sorted(set(values) - {f.name for f in fields(base)})
    if unknown:
        raise TrainingError(f"{stage} has no setting {', '.join(option_name(n) for n in unknown)}")
    return base.with_values(**values)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per settings field of any stage; the help names each stage's default."""
    seen: dict[str, list[tuple[str, Any, Any]]] = {}
    for stage, cls in SETTINGS.items():
        for f in fields(cls):
            seen.setdefault(f.name, []).append((stage, f.default, f))
    for name, per_stage in seen.items():
        f = per_stage[0][2]
        defaults = ", ".join(f"{stage} {default:g}" if isinstance(default, float) and not isinstance(default, bool)
                             else f"{stage} {default}" for stage, default, _ in per_stage)
        help_text = f"{f.metadata.get('help', '')} (default: {defaults})"
        if f.type in ("bool", bool):
            parser.add_argument(option_name(name), action="store_true", default=None, help=help_text)
        else:
            kind = float if f.type in ("float", float) else int
            parser.add_argument(option_name(name), type=kind, default=None, help=help_text)


def settings_from_args(stage: str, args: argparse.Namespace, preset: str = "default") -> StageSettings:
    """The stage's settings from parsed options; an option of another stage is an error."""
    own = {f.name for f in fields(SETTINGS[stage])}
    values: dict[str, Any] = {}
    for cls in SETTINGS.values():
        for f in fields(cls):
            value = getattr(args, f.name, None)
            if value is None:
                continue
            if f.name not in own:
                raise TrainingError(f"{option_name(f.name)} is not a setting of {stage}")
            values[f.name] = value
    return settings_for(stage, preset, **values)


def add_stage_arguments(parser: argparse.ArgumentParser | Any, stage: str) -> None:
    """Options ``--STAGE-FIELD`` for one stage's form (``lungsam finetune`` sets both stages)."""
    for f in fields(SETTINGS[stage]):
        default = f"{f.default:g}" if isinstance(f.default, float) else str(f.default)
        help_text = f"{f.metadata.get('help', '')} (default {default})"
        flag = f"--{stage}-{f.name.replace('_', '-')}"
        if f.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", default=None, dest=f"{stage}_{f.name}", help=help_text)
        else:
            kind = float if f.type in ("float", float) else int
            parser.add_argument(flag, type=kind, default=None, dest=f"{stage}_{f.name}", help=help_text)


def stage_settings_from_args(stage: str, args: argparse.Namespace, preset: str = "default") -> StageSettings:
    """The form of ``stage`` from :func:`add_stage_arguments`' options."""
    values = {f.name: getattr(args, f"{stage}_{f.name}", None) for f in fields(SETTINGS[stage])}
    try:
        return settings_for(stage, preset, **values)
    except TrainingError as exc:  # name the option the user typed
        raise TrainingError(str(exc).replace("--", f"--{stage}-")) from exc
