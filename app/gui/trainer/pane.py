"""Trainer pane: a view over :class:`trainer.finetune.FineTune` (the pipeline ``lungsam
finetune`` runs too).

The dock shows the corrected images of the open project and the split the run will use (the
trainer's own patient-grouped split), the FP32 base model (the current model's base, else the
shipped one), Stage 1 / Stage 2 settings with a measured duration estimate, then runs the
fine-tune's stages as ``lungsam train`` subprocesses (:mod:`app.gui.trainer.job`) while the user
keeps annotating: progress with stage, epoch and ETA, live loss / Dice curves, a log. At the
end, the current and the new INT8 model are compared on the held-back images in a QThread
(:mod:`app.gui.trainer.compare_worker`); the verdict says whether the new model is better and
"Keep current model" is the default unless it is. "Use new model" registers the run in the
project and hot-swaps it through the window's model worker, which re-embeds the current image.
The history list rolls back to any earlier version (:mod:`app.gui.trainer.models`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QGroupBox,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

import trainer.finetune as tp
from app.gui.trainer.compare_worker import ComparisonWorker
from app.gui.trainer.data_view import DataView
from app.gui.trainer.job import JobResult, JobStep, TrainJob
from app.gui.trainer.model_history import ModelHistory
from app.gui.trainer.models import TrainerModels
from app.gui.trainer.result_view import ResultView
from app.gui.trainer.run_view import RunView, stage_title
from app.gui.trainer.settings import TrainSettings
from engine.errors import LungSamError

PANE_WIDTH = 440
"""The pane's column: every setting, the result table and the buttons fit without a
horizontal scroll bar."""


class TrainerPane(TrainerModels, QWidget):
    """The dock's content; ``window`` is the MainWindow (project, model worker, load_model).

    The model-version handlers (use or keep the new model, rollback, Model menu) are
    :class:`TrainerModels`.
    """

    run_finished = Signal(object)  # JobResult
    comparison_ready = Signal(object)  # summary dict (or {"error": ...})
    model_registered = Signal(object)  # the project's version row
    _compare = Signal(object)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.job: TrainJob | None = None
        self.finetune: tp.FineTune | None = None
        self.comparison: dict[str, Any] | None = None
        self.split: tp.SplitPreview | None = None
        self.base_override: str | None = None
        self.estimate: tp.Estimate | None = None
        self.program = tp.cli_prefix()
        self.nice = 5  # the trainer yields the CPU to the annotation window
        self.problem: str | None = None  # why the last Start was refused (cleared once resolved)
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
        self.result_view.keep_button.clicked.connect(self.keep_current_model)
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
        self.setMinimumWidth(PANE_WIDTH)

    def sizeHint(self) -> QSize:
        """The column opens at its minimum width (the plots would ask for 600 px): the canvas
        beside it stays usable at the default window size."""
        return QSize(PANE_WIDTH, super().sizeHint().height())

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

    @property
    def plan(self) -> tp.TrainPlan | None:
        return self.finetune.plan if self.finetune is not None else None

    @property
    def run_dir(self) -> Path | None:
        return self.finetune.run_dir if self.finetune is not None else None

    @property
    def registered(self) -> dict[str, Any] | None:
        return self.finetune.registered if self.finetune is not None else None

    # -- project, split, base model, estimate -----------------------------------------------
    @property
    def project(self):
        return self.window.project

    def set_project(self, _project: object = None) -> None:
        """A folder was opened: show its corrected images. The previous folder's results go
        (a running job keeps its own folder and shows on)."""
        if not self.running and self.finetune is not None and not self._same_project():
            self.finetune, self.comparison = None, None
            self.result_view.clear()
            self.run_view.reset()
        self.problem = None
        self.run_view.set_status("")
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
        self.data_view.show_split(self.split, message, self.settings.val_fraction)
        self._refresh_base()
        self._refresh_history()
        self._update_estimate()
        self._recheck_problem()

    def _recheck_problem(self) -> None:
        """A refused Start's red message goes once its cause is resolved."""
        if self.problem is not None and not self.running and self.start_problem() != self.problem:
            self.problem = None
            self.run_view.set_status("")

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
            self.data_view.show_base("Base model: none (install lungsam-compact-base or choose an FP32 model folder)")
            return
        info = self.window.model_info
        note = f"; in use: {info.name}" if info is not None and Path(info.source) != Path(base) else ""
        self.data_view.show_base(f"Base model: {Path(base).name} [{tp.model_arch(base)}, FP32]{note}", base)

    def current_plan(self) -> tp.TrainPlan | None:
        base = self.base_model()
        if self.project is None or base is None:
            return None
        return tp.TrainPlan(self.project.root, base, self.settings.stage1(), self.settings.stage2(),
                            self.settings.val_fraction, 0, self.settings.device_key, self.settings.threads.value(),
                            self.user_style())

    def user_style(self) -> str | None:
        """The mask style the user works in: the new model is fine-tuned and judged in it."""
        annotator = getattr(self.window, "annotator", None)
        style = annotator.preferred_style() if annotator is not None else None
        return str(style) if style else None

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

    def default_steps(self, finetune: tp.FineTune) -> list[JobStep]:
        """Stage 1 from the FP32 base, then Stage 2 from Stage 1's best on the same split."""
        return [JobStep(stage, lambda stage=stage: finetune.stage_args(stage), finetune.stage_dir(stage))
                for stage in tp.STAGES]

    def start_problem(self) -> str | None:
        """Why Start cannot run now, or None."""
        if self.project is None:
            return "open a project folder first"
        if self.split is None:
            return "no corrected masks to train on yet"
        if problem := tp.split_problem(self.split):
            return problem
        plan = self.current_plan()
        if plan is None:
            return "no FP32 base model to fine-tune (install lungsam-compact-base or choose a model folder)"
        return tp.plan_problem(plan, self.project.read_only)

    def start(self) -> bool:
        """Start a run with the current settings; False (with the reason shown) when it cannot."""
        if self.running:
            return False
        self.window.save_current(reason="training")  # the newest corrections train too
        self.problem = None
        self.refresh()
        self.problem = self.start_problem()
        if self.problem:
            self.run_view.set_status(self.problem, failure=True)
            return False
        try:
            self.finetune = tp.FineTune.begin(self.current_plan())
        except (LungSamError, OSError) as exc:
            self.run_view.set_status(f"the run could not start: {exc}", failure=True)
            return False
        plan = self.finetune.plan
        self.comparison = None
        self.result_view.clear()
        self.run_view.reset(self.estimate)
        self.run_view.plot.set_total_epochs(plan.stage1.epochs + plan.stage2.epochs)
        self.job = TrainJob(self.make_steps(self.finetune), self.program, tp.child_env(plan.threads),
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
        if self.finetune is not None:
            self.finetune.write_status(status, reason, self.run_view.elapsed)

    def _job_finished(self, result: JobResult) -> None:
        view = self.run_view
        if self.finetune is not None:
            self.finetune.drop_cache()
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
            self._compare.emit({"finetune": self.finetune, "current": self.current_source() or self.plan.base_model,
                                "device": self.plan.device, "style": self.user_style()})
        self.run_finished.emit(result)

    def _compare_progress(self, done: int, total: int) -> None:
        self.run_view.set_part_done("compare", done / max(1, total), "comparing on the held-back images...")

    def _compared(self, summary: dict[str, Any]) -> None:
        self.comparison = summary
        self._finish_run()
        self.result_view.show_summary(summary)
        said = summary.get("verdict") or {}
        self.run_view.set_status(f"Finished in {tp.format_duration(self.run_view.elapsed)}. {said.get('text', '')}")
        self.comparison_ready.emit(summary)

    def _compare_failed(self, message: str) -> None:
        self.comparison = {"error": message}
        self._finish_run()
        self.result_view.note.setText(f"Comparison failed: {message}. The new model can still be used.")
        self.result_view.set_choice(better=False)
        self.comparison_ready.emit(self.comparison)

    def _finish_run(self) -> None:
        self._set_running(False)
        self._write_status("finished")
        self.run_view.set_part_done("compare", 1.0, "finished")


def install_trainer_dock(window) -> tuple[TrainerPane, QDockWidget]:
    """Create the pane as a right-hand dock (hidden until View > Trainer pane), in a column of
    its own beside the Labels panel: full height, so Start is reached without scrolling, and
    when it closes the column goes and the canvas gets its width back."""
    pane = TrainerPane(window)
    dock = QDockWidget("Trainer", window)
    dock.setObjectName("dock-Trainer")
    dock.setWidget(pane)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    labels = window.findChild(QDockWidget, "dock-Labels")
    if labels is not None:
        window.splitDockWidget(labels, dock, Qt.Orientation.Horizontal)
    dock.hide()
    action = getattr(window, "actions", {}).get("toggle_trainer")
    if action is not None:  # View > Trainer pane (Ctrl+T) follows the dock's closing button too
        dock.visibilityChanged.connect(lambda _visible: action.setChecked(not dock.isHidden()))
    dock.visibilityChanged.connect(lambda visible: visible and pane.refresh())

    def show() -> None:
        dock.show()
        dock.raise_()

    window.model_menu.history_requested.connect(show)
    window.model_menu.model_chosen.connect(pane.menu_model_chosen)
    return pane, dock
