"""The running part of the trainer pane: Start / Cancel, progress with stage, epoch and ETA,
live curves and the log, all fed with the trainer's JSON events.

Widgets only. Progress is one bar over the whole run: each part (Stage 1, Stage 2, the final
comparison) gets the share of the bar that the duration estimate gives it.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.trainer.plot import TrainPlot
from trainer.finetune import Estimate, format_duration

FAIL_STYLE = "color: #b00020; font-weight: bold;"
PARTS = ("stage1", "stage2", "compare")


def stage_title(stage: str) -> str:
    return stage.replace("stage", "Stage ")


def describe_event(event: dict[str, Any]) -> str | None:
    """One log line per event worth reading (None for checkpoints and the like)."""
    kind, stage = event.get("event"), stage_title(str(event.get("stage", "")))
    if kind == "start":
        return (f"{stage}: {event['train_images']} training / {event['val_images']} held-back images, "
                f"{event['epochs']} epochs x {event['steps_per_epoch']} steps")
    if kind == "model":
        return f"{stage}: {event['trainable_params']:,} of {event['total_params']:,} parameters train"
    if kind == "step":
        return f"{stage} epoch {event['epoch']} step {event['step']}/{event['total_steps']}: loss {event['loss']:.4f}"
    if kind == "epoch":
        best = " (best)" if event.get("best") else ""
        return f"{stage} epoch {event['epoch']}/{event.get('total_epochs', '?')}: val Dice {event['val_dice']:.4f}{best}"
    if kind == "rank":
        return f"{stage}: rank budget {event['budget']}" + (" (final)" if event.get("final") else "")
    if kind == "warning":
        return f"warning: {event.get('file')}: {event.get('reason')}"
    if kind == "finished_stage" and event.get("int8_model"):
        return f"{stage}: INT8 model written"
    if kind == "done":
        return f"{stage} done (best epoch {event.get('best_epoch')})"
    if kind == "failed":
        return f"{stage} FAILED: {event.get('reason')}"
    return None


class RunView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.start_button = QPushButton("Start fine-tuning")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.plot = TrainPlot()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setMaximumHeight(110)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        for widget in (self.progress, self.status, self.plot, self.log):
            layout.addWidget(widget)
        self.events: list[dict[str, Any]] = []
        self.stages: dict[str, dict[str, Any]] = {}
        self.estimate: Estimate | None = None
        self.started = 0.0
        self.reset()

    def reset(self, estimate: Estimate | None = None) -> None:
        self.events.clear()
        self.stages.clear()
        self.estimate = estimate
        self.started = time.monotonic()
        self.plot.clear()
        self.log.clear()
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.set_status("")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def set_running(self, on: bool) -> None:
        self.start_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)

    def set_status(self, text: str, failure: bool = False) -> None:
        self.status.setStyleSheet(FAIL_STYLE if failure else "")
        self.status.setText(text)

    def append_log(self, line: str) -> None:
        self.log.appendPlainText(line)
        bar = self.log.verticalScrollBar()
        bar.setValue(bar.maximum())

    def shares(self) -> dict[str, float]:
        """Each part's share of the bar, from the estimate (fixed shares without one)."""
        est = self.estimate.stage_seconds if self.estimate and self.estimate.seconds else {}
        if not est:
            return {"stage1": 0.65, "stage2": 0.3, "compare": 0.05}
        total = sum(est.values())
        return {k: v / total for k, v in est.items()}

    def set_part_done(self, part: str, fraction: float, text: str) -> None:
        shares = self.shares()
        before = sum(shares.get(p, 0.0) for p in PARTS[: PARTS.index(part)])
        self.progress.setValue(int(1000 * (before + shares.get(part, 0.0) * min(1.0, fraction))))
        self.progress.setFormat(text)

    # -- events ----------------------------------------------------------------------------
    def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        line = describe_event(event)
        if line:
            self.append_log(line)
        stage, kind = str(event.get("stage", "")), event.get("event")
        info = self.stages.setdefault(stage, {"epochs": 1, "steps_per_epoch": 1, "total_steps": 1})
        if kind == "start":
            offset = sum(i["epochs"] for s, i in self.stages.items() if s != stage)
            info.update(epochs=event["epochs"], steps_per_epoch=event["steps_per_epoch"], total_steps=event["total_steps"])
            self.plot.begin_stage(stage, offset)
        elif kind in ("step", "epoch"):
            self.plot.add_event(event, info["steps_per_epoch"])
            if stage in PARTS:
                self._progress(stage, event, info)
        elif kind == "failed":
            self.set_status(f"{stage_title(stage)} failed: {event.get('reason')}", failure=True)

    def _progress(self, stage: str, event: dict[str, Any], info: dict[str, Any]) -> None:
        fraction = float(event.get("step", 0)) / max(1, info["total_steps"])
        eta = float(event.get("eta_s") or 0)
        est = self.estimate
        if stage == "stage1" and est is not None and est.seconds:
            # Stage 2 and the comparison still to come, scaled by how fast Stage 1 really runs.
            expected = self.shares()["stage1"] * fraction * est.seconds
            ratio = min(5.0, max(0.2, self.elapsed / expected)) if expected > 1 else 1.0
            eta += ratio * (est.stage_seconds["stage2"] + est.stage_seconds["compare"])
        text = f"{stage_title(stage)} - epoch {event.get('epoch', 0)}/{info['epochs']} - ETA {format_duration(eta)}"
        self.set_part_done(stage, fraction, text)
        self.set_status(text)
