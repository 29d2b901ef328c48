"""The trainer pane's settings form: Stage 1 / Stage 2 settings, hold-back, device, threads.

Widgets only: the form shows and edits the stage forms of :mod:`trainer.settings`
(:class:`~trainer.settings.Stage1Settings`, :class:`~trainer.settings.Stage2Settings`; the
presets are their defaults and ``Stage1Settings.paper()``) and emits ``changed`` so the pane
can re-estimate the duration. Spin and combo boxes ignore the mouse wheel unless focused,
so scrolling the pane never changes a value by accident.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, Signal
from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from trainer.finetune import Estimate, default_threads, format_duration
from trainer.settings import Stage1Settings, Stage2Settings

WARN_STYLE = "background: #7a5b00; color: white; padding: 4px;"


def _lr_edit(value: float) -> QLineEdit:
    edit = QLineEdit(f"{value:g}")
    validator = QDoubleValidator(1e-9, 1.0, 10)
    validator.setNotation(QDoubleValidator.Notation.ScientificNotation)
    edit.setValidator(validator)
    edit.setMaximumWidth(80)
    return edit


class WheelGuard(QObject):
    """Gives a wheel event to the enclosing scroll area (not the box) unless the box has focus:
    the pane scrolls under the mouse as everywhere else in it, and no value changes by accident.

    The event is handed over explicitly rather than ignored: Qt propagates only spontaneous
    wheel events to the parent, and a box that swallowed the wheel would stop the scrolling."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.Wheel or not isinstance(watched, QWidget) or watched.hasFocus():
            return False
        area = watched.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        if area is not None:
            QCoreApplication.sendEvent(area.verticalScrollBar(), event)
        event.accept()
        return True


def guard_wheel(widgets: list[QWidget], guard: WheelGuard) -> None:
    for widget in widgets:
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # a click focuses, the wheel does not
        widget.installEventFilter(guard)


def _spin(low: int, high: int, value: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    return spin


class TrainSettings(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        s1, s2 = Stage1Settings(), Stage2Settings()
        self.s1_epochs, self.s1_batch = _spin(1, 500, s1.epochs), _spin(1, 256, s1.batch_size)
        self.adapter_lr, self.decoder_lr = _lr_edit(s1.adapter_lr), _lr_edit(s1.decoder_lr)
        self.rank_max, self.rank_target = _spin(1, 256, s1.rank_max), _spin(1, 256, s1.rank_target)
        for spin in (self.rank_max, self.rank_target):
            spin.setToolTip("AdaLoRA rank budget: initial rank per layer -> average rank after "
                            "pruning (global budget, layers may end with different ranks)")
        self.s2_epochs, self.s2_batch = _spin(1, 500, s2.epochs), _spin(1, 256, s2.batch_size)
        self.lambda_lr = _lr_edit(s2.lambda_lr)
        self.held_back = _spin(5, 50, 20)
        self.held_back.setSuffix(" %")
        self.held_back.setToolTip("Images held back for validation, whole patients at a time")
        self.device = QComboBox()
        for key, text in (("auto", "Auto"), ("cpu", "CPU"), ("cuda", "CUDA GPU")):
            self.device.addItem(text, key)
        self.threads = _spin(1, max(1, os.cpu_count() or 1), default_threads())
        self.default_button = QPushButton("Default")
        self.paper_button = QPushButton("Paper")
        self.default_button.setToolTip("Our learning rates for a few dozen images (1e-3 / 1e-4)")
        self.paper_button.setToolTip("The paper's Stage 1 learning rates (5e-5 adapters / 2e-5 decoder)")
        self.default_button.clicked.connect(lambda: self.apply(Stage1Settings(), Stage2Settings()))
        self.paper_button.clicked.connect(lambda: self.apply(Stage1Settings.paper(), Stage2Settings()))

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        presets = QHBoxLayout()
        presets.addWidget(QLabel("Preset:"))
        presets.addWidget(self.default_button)
        presets.addWidget(self.paper_button)
        presets.addStretch(1)
        grid.addLayout(presets, 0, 0, 1, 4)
        rows = (
            ("Stage 1 epochs", self.s1_epochs, "batch", self.s1_batch),
            ("adapter lr", self.adapter_lr, "decoder lr", self.decoder_lr),
            ("rank start", self.rank_max, "rank target", self.rank_target),
            ("Stage 2 epochs", self.s2_epochs, "batch", self.s2_batch),
            ("lambda lr", self.lambda_lr, "held back", self.held_back),
            ("device", self.device, "threads", self.threads),
        )
        for r, (t1, w1, t2, w2) in enumerate(rows, start=1):
            grid.addWidget(QLabel(t1), r, 0)
            grid.addWidget(w1, r, 1)
            if w2 is not None:
                grid.addWidget(QLabel(t2), r, 2)
                grid.addWidget(w2, r, 3)
        for spin in (self.s1_epochs, self.s1_batch, self.s2_epochs, self.s2_batch, self.held_back, self.threads):
            spin.valueChanged.connect(lambda _v: self.changed.emit())
        for edit in (self.adapter_lr, self.decoder_lr, self.lambda_lr):
            edit.editingFinished.connect(self.changed.emit)
        self.device.currentIndexChanged.connect(lambda _i: self.changed.emit())
        self.wheel_guard = WheelGuard(self)
        guard_wheel([self.s1_epochs, self.s1_batch, self.rank_max, self.rank_target, self.s2_epochs,
                     self.s2_batch, self.held_back, self.threads, self.device], self.wheel_guard)
        self._enable_cuda()
        self.estimate_label = QLabel("Estimated duration: -")
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(WARN_STYLE)
        self.warning.setVisible(False)
        grid.addWidget(self.estimate_label, len(rows) + 1, 0, 1, 4)
        grid.addWidget(self.warning, len(rows) + 2, 0, 1, 4)

    def show_estimate(self, est: Estimate | None) -> None:
        """The run's measured-table estimate, with a warning when it would take hours on CPU."""
        if est is None:
            self.estimate_label.setText("Estimated duration: -")
        elif est.seconds is None:
            self.estimate_label.setText(f"Estimated duration: not measured for {est.arch} on {est.device}")
        else:
            self.estimate_label.setText(f"Estimated duration: about {format_duration(est.seconds)} "
                                        f"on {est.device.upper()} ({est.arch})")
        warn = est is not None and est.warn
        self.warning.setVisible(warn)
        if warn:
            self.warning.setText(f"This run would take about {format_duration(est.seconds)} on the CPU "
                                 f"({est.arch} without a GPU). Use fewer epochs, a compact model or a CUDA GPU.")

    def _enable_cuda(self) -> None:
        from app.gui.model_menu import cuda_available

        item = self.device.model().item(self.device.findData("cuda"))
        if item is not None:
            item.setEnabled(cuda_available())

    # -- values ----------------------------------------------------------------------------
    def apply(self, s1: Stage1Settings, s2: Stage2Settings) -> None:
        self.s1_epochs.setValue(s1.epochs)
        self.s1_batch.setValue(s1.batch_size)
        self.adapter_lr.setText(f"{s1.adapter_lr:g}")
        self.decoder_lr.setText(f"{s1.decoder_lr:g}")
        self.rank_max.setValue(s1.rank_max)
        self.rank_target.setValue(s1.rank_target)
        self.s2_epochs.setValue(s2.epochs)
        self.s2_batch.setValue(s2.batch_size)
        self.lambda_lr.setText(f"{s2.lambda_lr:g}")
        self.changed.emit()

    def stage1(self) -> Stage1Settings:
        default = Stage1Settings()
        return Stage1Settings(self.s1_epochs.value(), self.s1_batch.value(),
                              _float(self.adapter_lr, default.adapter_lr), _float(self.decoder_lr, default.decoder_lr),
                              self.rank_max.value(), min(self.rank_target.value(), self.rank_max.value())).validate()

    def stage2(self) -> Stage2Settings:
        return Stage2Settings(self.s2_epochs.value(), self.s2_batch.value(),
                              _float(self.lambda_lr, Stage2Settings().lambda_lr)).validate()

    @property
    def val_fraction(self) -> float:
        return self.held_back.value() / 100.0

    @property
    def device_key(self) -> str:
        return str(self.device.currentData())


def _float(edit: QLineEdit, fallback: float) -> float:
    try:
        value = float(edit.text())
    except ValueError:
        return fallback
    return value if value > 0 else fallback
