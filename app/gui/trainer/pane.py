"""Trainer pane: fine-tune on the clinician's corrected masks, compare, hot-swap the model.

The dock shows the corrected images of the open project and the split the run will use (the
trainer's own :func:`trainer.data.datasets.split_pairs`, grouped by patient), the FP32 base model,
Stage 1 / Stage 2 presets with a measured duration estimate, then runs
``lungsam train stage1`` and ``stage2`` as subprocesses (:mod:`app.gui.trainer.job`) while the
user keeps annotating: progress with stage, epoch and ETA, live loss / Dice curves, a log.
At the end, the current and the new INT8 model are compared on the held-back images in a
QThread (:mod:`app.gui.trainer.summary`); "Use new model" registers the run in the project
(:mod:`app.gui.trainer.model_versions`) and hot-swaps it through the window's model worker, which
re-embeds the current image. The history list rolls back to any earlier version; those model
handlers live in :mod:`app.gui.trainer.models`.

Policy: a run is registered only when the user clicks "Use new model". Cancelled and failed
runs leave their folder under ``.lungsam/runs/`` (with ``status.json``) and nothing else.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QGroupBox,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.gui.trainer import plan as tp
from app.gui.trainer.data_view import DataView
from app.gui.trainer.job import JobResult, JobStep, TrainJob
from app.gui.trainer.model_history import ModelHistory
from app.gui.trainer.model_versions import version_name
from app.gui.trainer.models import TrainerModels
from app.gui.trainer.result_view import ResultView, fmt
from app.gui.trainer.run_view import RunView, stage_title
from app.gui.trainer.settings import TrainSettings
from app.gui.trainer.summary import ComparisonWorker
from engine.atomic import atomic_write_bytes
from engine.errors import LungSamError


class TrainerPane(TrainerModels, QWidget):
    """The dock's content; ``window`` is the MainWindow (project, model worker, load_model).

    The model-version handlers (use new model, rollback, Model menu) are :class:`TrainerModels`.
    """

    run_finished = Signal(object)  # JobResult
    comparison_ready = Signal(object)  # summary dict (or {"error": ...})
    model_registered = Signal(object)  # the project's version row
    _compare = Signal(object)

    def __init__(self, window) -> None:  # noqa: ANN001
        super().__init__(window)
        self.window = window
        self.job: TrainJob | None = None
        self.plan: tp.TrainPlan | None = None
        self.run_dir: Path | None = None
        self.comparison: dict[str, Any] | None = None
        self.registered: dict[str, Any] | None = None
        self.split: tp.SplitPreview | None = None
        self.base_override: str | None = None
        self.estimate: tp.Estimate | None = None
        self.program = tp.cli_prefix()
        self.nice = 5  # the trainer yields the CPU to the annotation window
        self.make_steps = self.default_steps  # the pipeline (tests may shorten it)
        self._build()
        self.compare_thread = QThread(self)
        self.compare_thread.setObjectName("lungsam-compare")
        self.comparer = ComparisonWorker()
        self.comparer.moveToThread(self.compare_thread)
        self._compare.connect(self.comparer.run)
        self.comparer.done.connect(self._compared)
        self.comparer.failed.connect(self._compare_failed)
        self.comparer.progress.connect(self._compare_progress)
        self.compare_thread.start()
        self._refresh_timer = QTimer(self, singleShot=True, interval=800)
        self._refresh_timer.timeout.connect(self.refresh)
        window.saved.connect(lambda *_: self._refresh_timer.start())
        window.worker.model_ready.connect(self._model_changed)

    # -- layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        self.content = QWidget()
        column = QVBoxLayout(self.content)
        data = QGroupBox("Corrected images")
        self.data_view = DataView()
        self.data_view.base_chosen.connect(self.set_base_model)
        QVBoxLayout(data).addWidget(self.data_view)

        settings = QGroupBox("Fine-tuning: AdaLoRA (Stage 1) -> QAT (Stage 2) -> INT8")
        self.settings = TrainSettings()
        self.settings.changed.connect(self._update_estimate)
        self.settings.held_back.valueChanged.connect(lambda _v: self.refresh())
        QVBoxLayout(settings).addWidget(self.settings)

        run = QGroupBox("Run")
        self.run_view = RunView()
        self.run_view.start_button.clicked.connect(self.start)
        self.run_view.cancel_button.clicked.connect(self.cancel)
        QVBoxLayout(run).addWidget(self.run_view)
        result = QGroupBox("Result on the held-back images")
        self.result_view = ResultView()
        self.result_view.use_button.clicked.connect(self.use_new_model)
        QVBoxLayout(result).addWidget(self.result_view)
        history = QGroupBox("Model history (this project)")
        self.history = ModelHistory()
        self.history.version_chosen.connect(self.use_version)
        QVBoxLayout(history).addWidget(self.history)

        for group in (data, settings, run, result, history):
            column.addWidget(group)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.setMinimumWidth(440)

    # Shortcuts used by tests and the demo.
    @property
    def events(self) -> list[dict[str, Any]]:
        return self.run_view.events

    @property
    def status(self) -> QLabel:
        return self.run_view.status

    @property
    def use_button(self) -> QPushButton:
        return self.result_view.use_button

    # -- project, split, base model, estimate -----------------------------------------------
    @property
    def project(self):  # noqa: ANN201 - app.gui.annotate.project.Project | None
        return self.window.project

    def set_project(self, _project: object = None) -> None:
        """A folder was opened: show its corrected images (a running job keeps its own folder)."""
        if not self.running and self.comparison is not None and self.registered is None:
            self.result_view.use_button.setEnabled(self.plan is not None and self._same_project())
        self.refresh()

    def _same_project(self) -> bool:
        return self.project is not None and self.plan is not None and Path(self.project.root) == Path(self.plan.project)

    def refresh(self) -> None:
        """Re-read the corrected images, the split, the base model, history and estimate."""
        self.split, message = None, "open a project folder"
        if self.project is not None:
            try:
                self.split = tp.preview_split(self.project.root, self.settings.val_fraction, 0)
            except LungSamError as exc:
                message = f"{exc}. Correct masks and save them (Ctrl+S) to train on them."
        self.data_view.show_split(self.split, message)
        self._refresh_base()
        self._refresh_history()
        self._update_estimate()

    def current_source(self) -> str | None:
        info = self.window.model_info
        if info is not None:
            return info.source
        from engine.models import default_model_name, resolve_model

        return str(resolve_model(None)) if default_model_name() else None

    def base_model(self) -> str | None:
        if self.base_override:
            return self.base_override
        return tp.fine_tune_base(self.current_source(), self._versions())

    def set_base_model(self, spec: str | None) -> None:
        """Fine-tune from ``spec`` instead of the current model's FP32 base."""
        self.base_override = spec
        self.refresh()

    def _refresh_base(self) -> None:
        base = self.base_model()
        if base is None:
            self.data_view.show_base("Base model: none (install or open an FP32 model)")
            return
        info = self.window.model_info
        note = f"; in use: {info.name}" if info is not None and Path(info.source) != Path(base) else ""
        self.data_view.show_base(f"Base model: {Path(base).name} [{tp.model_arch(base)}, FP32]{note}", base)

    def current_plan(self) -> tp.TrainPlan | None:
        base = self.base_model()
        if self.project is None or base is None:
            return None
        return tp.TrainPlan(self.project.root, base, self.settings.stage1(), self.settings.stage2(),
                            self.settings.val_fraction, 0, self.settings.device_key, self.settings.threads.value())

    def _update_estimate(self) -> None:
        plan = self.current_plan()
        self.estimate = None
        if plan is not None and self.split is not None:
            self.estimate = tp.estimate(plan, len(self.split.train), len(self.split.val), tp.model_arch(plan.base_model))
        self.settings.show_estimate(self.estimate)

    def _model_changed(self, _info: object) -> None:
        self._refresh_base()
        self._refresh_history()
        self._update_estimate()

    # -- run -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def default_steps(self, plan: tp.TrainPlan, run_dir: Path) -> list[JobStep]:
        """Stage 1 from the FP32 base, then Stage 2 from Stage 1's best on the same split."""
        s1, s2 = run_dir / "stage1", run_dir / "stage2"

        def stage2_args() -> list[str]:
            if not (s1 / "best" / "model.json").is_file():
                raise LungSamError("Stage 1 produced no model")
            summary = json.loads((s1 / "summary.json").read_text())
            exclude = tp.stage2_exclude(plan, summary, s2)
            return tp.stage_args(plan, "stage2", str(s1 / "best"), s2, exclude)

        return [JobStep("stage1", lambda: tp.stage_args(plan, "stage1", plan.base_model, s1), s1),
                JobStep("stage2", stage2_args, s2)]

    def start(self) -> bool:
        """Start a run with the current settings; False (with the reason shown) when it cannot."""
        if self.running:
            return False
        self.window.save_current(reason="training")  # the newest corrections train too
        self.refresh()
        base = self.base_model()
        problem = None
        if self.project is None:
            problem = "open a project folder first"
        elif self.project.read_only:
            problem = "the project is open read-only (another window writes to it)"
        elif self.split is None:
            problem = "no corrected masks to train on yet"
        elif base is None:
            problem = "no FP32 base model to fine-tune"
        elif (why := tp.can_start_stage1(base)) is not None:
            problem = f"{Path(base).name} cannot be fine-tuned: {why}; choose its FP32 base"
        if problem:
            self.run_view.set_status(problem, failure=True)
            return False
        self.plan = self.current_plan()
        self.run_dir = tp.new_run_dir(self.plan.project)
        self.run_dir.mkdir(parents=True)
        atomic_write_bytes(self.run_dir / "plan.json", json.dumps(self.plan.to_dict(), indent=2).encode())
        self.comparison = self.registered = None
        self.result_view.clear()
        self.run_view.reset(self.estimate)
        self.run_view.plot.set_total_epochs(self.plan.stage1.epochs + self.plan.stage2.epochs)
        self.job = TrainJob(self.make_steps(self.plan, self.run_dir), self.program, tp.child_env(self.plan.threads),
                           nice=self.nice, parent=self)
        self.job.event.connect(self.run_view.on_event)
        self.job.log.connect(self.run_view.append_log)
        self.job.step_started.connect(lambda name: self.run_view.set_status(f"{stage_title(name)}: loading model and images..."))
        self.job.finished.connect(self._job_finished)
        self._set_running(True)
        self.run_view.append_log(f"run folder: {self.run_dir}")
        self.job.start()
        return True

    def cancel(self) -> None:
        if self.job is not None and self.running:
            self.run_view.set_status("cancelling...")
            self.job.cancel()

    def shutdown(self) -> None:
        """Window closing: stop the trainer and the comparison thread."""
        if self.job is not None and self.running:
            self.job.stop()
        self.compare_thread.quit()
        self.compare_thread.wait(60000)

    def _set_running(self, on: bool) -> None:
        self.run_view.set_running(on)
        self.settings.setEnabled(not on)

    def _write_status(self, status: str, reason: str = "") -> None:
        if self.run_dir is not None and self.run_dir.is_dir():
            record = {"status": status, "reason": reason, "seconds": round(self.run_view.elapsed, 1)}
            atomic_write_bytes(self.run_dir / "status.json", json.dumps(record, indent=2).encode())

    def _job_finished(self, result: JobResult) -> None:
        view = self.run_view
        if self.run_dir is not None:  # derived data only; the run's record stays
            shutil.rmtree(self.run_dir / tp.DATA_CACHE, ignore_errors=True)
        if result.cancelled:
            self._set_running(False)
            self._write_status("cancelled")
            view.progress.setFormat("cancelled")
            view.set_status("Cancelled: nothing was registered; the current model is unchanged.", failure=True)
        elif not result.ok:
            self._set_running(False)
            self._write_status("failed", result.reason)
            view.progress.setFormat("failed")
            view.set_status(f"{stage_title(result.step)} failed: {result.reason}. "
                            "The project and the current model are unchanged.", failure=True)
        else:
            view.cancel_button.setEnabled(False)
            view.set_part_done("compare", 0.0, "comparing on the held-back images...")
            view.set_status("Training finished; comparing the current and the new model on the held-back images...")
            current = self.current_source() or self.plan.base_model
            self._compare.emit({"project": str(self.plan.project), "run_dir": str(self.run_dir), "current": current,
                                "new": str(self.run_dir / "stage2" / "int8"), "device": self.plan.device,
                                "new_name": version_name(self.run_dir),
                                "current_style": self.window.annotator.style})
        self.run_finished.emit(result)

    def _compare_progress(self, done: int, total: int) -> None:
        self.run_view.set_part_done("compare", done / max(1, total), "comparing on the held-back images...")

    def _compared(self, summary: dict[str, Any]) -> None:
        self.comparison = summary
        self._finish_run()
        self.result_view.show_summary(summary)
        before, after, p = summary.get("dice_before"), summary.get("dice_after"), summary.get("p_wilcoxon")
        self.run_view.set_status(
            f"Finished in {tp.format_duration(self.run_view.elapsed)}: held-back Dice {fmt(before)} -> {fmt(after)} "
            f"(p = {fmt(p, 3)}, {summary['n_pairs']} images).")
        self.comparison_ready.emit(summary)

    def _compare_failed(self, message: str) -> None:
        self.comparison = {"error": message}
        self._finish_run()
        self.result_view.note.setText(f"Comparison failed: {message}. The new model can still be used.")
        self.comparison_ready.emit(self.comparison)

    def _finish_run(self) -> None:
        self._set_running(False)
        self._write_status("finished")
        self.run_view.set_part_done("compare", 1.0, "finished")
        self.result_view.use_button.setEnabled(True)


def install_trainer_dock(window) -> tuple[TrainerPane, QDockWidget]:  # noqa: ANN001
    """Create the pane as a right-hand dock (hidden until View > Trainer pane)."""
    pane = TrainerPane(window)
    dock = QDockWidget("Trainer", window)
    dock.setObjectName("dock-Trainer")
    dock.setWidget(pane)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    dock.hide()
    action = getattr(window, "actions", {}).get("toggle_trainer")
    if action is not None:  # View > Trainer pane (Ctrl+T) follows the dock's closing button too
        dock.visibilityChanged.connect(lambda _visible: action.setChecked(not dock.isHidden()))
    dock.visibilityChanged.connect(lambda visible: visible and pane.refresh())

    def show() -> None:
        dock.show()
        dock.raise_()

    def give_room(visible: bool) -> None:  # the Labels panel is short; the pane gets the height
        labels = window.findChild(QDockWidget, "dock-Labels")
        if visible and labels is not None and not dock.isFloating():
            window.resizeDocks([labels, dock], [260, max(400, window.height() - 260)], Qt.Orientation.Vertical)

    dock.visibilityChanged.connect(give_room)
    window.model_menu.history_requested.connect(show)
    window.model_menu.model_chosen.connect(pane.menu_model_chosen)
    return pane, dock
