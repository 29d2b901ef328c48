"""One fine-tune of a project, without Qt: plan -> Stage 1 -> Stage 2 -> held-back comparison
-> register. The trainer pane and ``lungsam finetune`` drive this same object.

The GUI runs each stage as a ``lungsam train`` subprocess (:meth:`FineTune.stage_args`), so
annotation never waits for training; the CLI runs the same stages in-process
(:meth:`FineTune.stage_request`, the request those arguments parse into). Both print the same
JSON-lines events (:mod:`trainer.training.events`): the stages' own, then the ``compare``
stage's ``start``, ``progress``, ``comparison``, ``registered`` or ``kept``, and ``done``.

Policy: a run is registered only on request (the pane's "Use new model", the CLI's
``--register``); by default the CLI registers only a model the comparison calls better.
Cancelled and failed runs leave their folder under ``.lungsam/runs/`` (``status.json``) and
nothing else.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_bytes
from engine.errors import LungSamError
from trainer.finetune.compare import compare_models
from trainer.finetune.plan import (
    DATA_CACHE,
    TrainPlan,
    can_start_stage1,
    model_meta,
    new_run_dir,
    preview_split,
    stage2_exclude,
    stage_args,
)
from trainer.finetune.versions import register_run, version_name

STAGES = ("stage1", "stage2")
REGISTER_POLICIES = ("if-better", "always", "never")
LOG_EVERY_MAX = 10


def plan_problem(plan: TrainPlan | None, read_only: bool = False) -> str | None:
    """Why ``plan`` cannot start (in the user's words), or None when it can."""
    if plan is None:
        return "open a project folder first"
    if read_only:
        return "the project is open read-only (another window writes to it)"
    if not plan.base_model:
        return "no FP32 base model to fine-tune (install lungsam-compact-base or choose a model folder)"
    why = can_start_stage1(plan.base_model)
    if why is not None:
        return f"{Path(plan.base_model).name} cannot be fine-tuned: {why}; choose its FP32 base"
    return None


def model_styles(spec: str | Path) -> list[str]:
    """The mask styles a model folder declares (``[]`` when it names none)."""
    meta = model_meta(spec) or {}
    styles = meta.get("mask_styles") or []
    return [str(s) for s in styles] if isinstance(styles, list) else []


class FineTune:
    """A fine-tune's run folder and the steps that fill it; see the module docstring."""

    def __init__(self, plan: TrainPlan, run_dir: Path) -> None:
        self.plan = plan
        self.run_dir = Path(run_dir)
        self.comparison: dict[str, Any] | None = None
        self.registered: dict[str, Any] | None = None
        self.started = time.monotonic()

    @classmethod
    def begin(cls, plan: TrainPlan) -> FineTune:
        """A new run folder under ``.lungsam/runs/`` with the plan written into it."""
        problem = plan_problem(plan)
        if problem:
            raise LungSamError(problem)
        run_dir = new_run_dir(plan.project)
        run_dir.mkdir(parents=True)
        atomic_write_bytes(run_dir / "plan.json", json.dumps(plan.to_dict(), indent=2).encode())
        return cls(plan, run_dir)

    # -- the stages ------------------------------------------------------------------------
    def stage_dir(self, stage: str) -> Path:
        return self.run_dir / stage

    @property
    def int8_model(self) -> Path:
        return self.stage_dir("stage2") / "int8"

    @property
    def name(self) -> str:
        """The project version name the new model gets when registered."""
        return version_name(self.run_dir)

    def _style(self) -> str | None:
        """The user's mask style when the base model has it (then the corrections train it)."""
        style = self.plan.style
        return style if style and style in model_styles(self.plan.base_model) else None

    def _stage_inputs(self, stage: str) -> tuple[str, Path | None]:
        """The model a stage starts from and its exclude list (Stage 2 keeps Stage 1's split)."""
        if stage == "stage1":
            return self.plan.base_model, None
        s1 = self.stage_dir("stage1")
        if not (s1 / "best" / "model.json").is_file():
            raise LungSamError("Stage 1 produced no model")
        summary = json.loads((s1 / "summary.json").read_text())
        return str(s1 / "best"), stage2_exclude(self.plan, summary, self.stage_dir("stage2"))

    def log_every(self, stage: str) -> int:
        """A step event at least once per epoch (the loss curve gets a point per epoch even
        when an epoch is a single step), at most every 10 steps."""
        settings = self.plan.stage1 if stage == "stage1" else self.plan.stage2
        n_train = len(preview_split(self.plan.project, self.plan.val_fraction, self.plan.seed).train)
        return max(1, min(LOG_EVERY_MAX, n_train // settings.batch_size))

    def stage_args(self, stage: str) -> list[str]:
        """``lungsam train`` arguments of ``stage`` (called when it starts: Stage 2 reads Stage 1's
        summary); raises :class:`LungSamError` when the stage cannot start."""
        model, exclude = self._stage_inputs(stage)
        args = stage_args(self.plan, stage, model, self.stage_dir(stage), exclude, self._style())
        return [*args, "--log-every", str(self.log_every(stage))]

    def stage_request(self, stage: str, events: str | None = "-", progress: bool = True):
        """The :class:`trainer.training.TrainRequest` that :meth:`stage_args` parse into."""
        from trainer.training import TrainRequest

        model, exclude = self._stage_inputs(stage)
        plan = self.plan
        return TrainRequest(
            stage=stage, data=Path(plan.project), out=self.stage_dir(stage), model=model,
            settings=plan.stage1 if stage == "stage1" else plan.stage2, val_fraction=plan.val_fraction,
            device=plan.device, events=events, seed=plan.seed, threads=plan.threads, exclude=exclude,
            data_style=self._style(), progress=progress, log_every=self.log_every(stage),
        )

    # -- after the stages ------------------------------------------------------------------
    def compare(self, current: str, device: str = "cpu", progress: Callable[[int, int], None] | None = None,
                style: str | None = None) -> dict[str, Any]:
        """Current vs new INT8 model on the held-back images (``comparison.json``, a verdict)."""
        self.comparison = compare_models(self.plan.project, self.run_dir, current, str(self.int8_model), device,
                                         progress, self.name, style)
        return self.comparison

    def register(self, store: Any, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """Copy the new model into ``.lungsam/models`` and make it the project's model."""
        if self.registered is not None:
            return self.registered
        self.registered = register_run(store, self.run_dir, self.plan.to_dict(), self.comparison or {}, previous)
        self.write_status("registered", self.registered["name"])
        return self.registered

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def write_status(self, status: str, reason: str = "", seconds: float | None = None) -> None:
        """``status.json``: finished, failed, cancelled or registered, with the reason."""
        if self.run_dir.is_dir():
            record = {"status": status, "reason": reason,
                      "seconds": round(self.elapsed if seconds is None else seconds, 1)}
            atomic_write_bytes(self.run_dir / "status.json", json.dumps(record, indent=2).encode())

    def drop_cache(self) -> None:
        """Derived data only (decoded images); the run's record stays."""
        shutil.rmtree(self.run_dir / DATA_CACHE, ignore_errors=True)

    # -- headless --------------------------------------------------------------------------
    def run(self, current: str, events: str | None = "-", register: str = "if-better",
            previous: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
        """Both stages in-process, the comparison, then registering per ``register``.

        Returns the comparison (with ``registered`` set to the version row or None). A failure
        writes ``status.json`` and re-raises; a Ctrl+C (or SIGTERM) leaves ``cancelled``.
        """
        from engine.project import ProjectStore
        from trainer.training import EventWriter, run_stage

        if register not in REGISTER_POLICIES:
            raise LungSamError(f"--register must be one of {', '.join(REGISTER_POLICIES)}")
        writer = EventWriter(events, self.run_dir / "events.jsonl", stage="compare")
        try:
            for stage in STAGES:
                run_stage(self.stage_request(stage, events, progress))
            self.drop_cache()
            writer.emit("start", held_back=None, current=current, new=str(self.int8_model))

            def report(done: int, total: int) -> None:
                writer.emit("progress", done=done, total=total)

            summary = self.compare(current, self.plan.device if self.plan.device != "auto" else "cpu", report,
                                   self.plan.style)
            said = summary["verdict"]
            writer.emit("comparison", **{k: v for k, v in summary.items() if k != "rows"})
            self.write_status("finished")
            wanted = register == "always" or (register == "if-better" and said["kind"] == "better")
            if wanted:
                with ProjectStore.open(self.plan.project) as store:
                    version = self.register(store, previous)
                writer.emit("registered", name=version["name"], path=str(version["path"]))
            else:
                writer.emit("kept", reason=said["text"], current=current)
            writer.emit("done", verdict=said["kind"], registered=self.registered["name"] if self.registered else None)
        except KeyboardInterrupt:
            self.drop_cache()
            self.write_status("cancelled")
            raise
        except Exception as exc:
            self.drop_cache()
            self.write_status("failed", str(exc))
            writer.emit("failed", reason=str(exc))
            raise
        finally:
            writer.close()
        return {**summary, "registered": self.registered}
