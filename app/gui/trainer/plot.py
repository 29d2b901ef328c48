"""Live curves of a fine-tuning run: training loss and validation Dice (pyqtgraph).

The x axis counts epochs over the whole run (Stage 2's epochs follow Stage 1's), with a dashed
line where Stage 2 begins. Fed with the trainer's ``step`` and ``epoch`` events.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

STAGE_COLOURS = {"stage1": "#2b7bd6", "stage2": "#d67a2b"}


class TrainPlot(QWidget):
    """Two stacked plots sharing the epoch axis."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground("w")
        self.loss_plot = self.view.addPlot(row=0, col=0)
        self.dice_plot = self.view.addPlot(row=1, col=0)
        self.loss_plot.setLabel("left", "train loss")
        self.dice_plot.setLabel("left", "val Dice")
        self.dice_plot.setLabel("bottom", "epoch")
        # Legends where the curves are not: the loss falls (top right is free), Dice rises (bottom right).
        for plot, corner in ((self.loss_plot, (-5, 5)), (self.dice_plot, (-5, -5))):
            plot.getAxis("left").enableAutoSIPrefix(False)  # "0.91", not "910 (x0.001)"
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.addLegend(offset=corner, labelTextSize="8pt")
        self.loss: dict[str, list[tuple[float, float]]] = {}
        self.dice: dict[str, list[tuple[float, float]]] = {}
        self.offsets: dict[str, float] = {}
        self._curves: dict[tuple[str, str], Any] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.setMinimumHeight(220)

    def clear(self) -> None:
        for plot in (self.loss_plot, self.dice_plot):
            plot.clear()
        self.loss.clear()
        self.dice.clear()
        self.offsets.clear()
        self._curves.clear()

    def set_total_epochs(self, epochs: float) -> None:
        """Fix the x axis to the whole run, so both stages fit from the start."""
        for plot in (self.loss_plot, self.dice_plot):
            plot.setXRange(0, max(1.0, epochs), padding=0.02)

    def begin_stage(self, stage: str, offset_epochs: float) -> None:
        """Stage ``stage`` starts at ``offset_epochs`` on the shared axis."""
        self.offsets[stage] = offset_epochs
        if offset_epochs > 0:
            for plot in (self.loss_plot, self.dice_plot):
                plot.addItem(pg.InfiniteLine(offset_epochs, angle=90, pen=pg.mkPen("#888", style=Qt.PenStyle.DashLine)))

    def add_event(self, event: dict[str, Any], steps_per_epoch: int) -> None:
        stage = str(event.get("stage", ""))
        offset = self.offsets.get(stage, 0.0)
        if event.get("event") == "step" and event.get("loss") is not None:
            x = offset + float(event["step"]) / max(1, steps_per_epoch)
            self.loss.setdefault(stage, []).append((x, float(event["loss"])))
            self._draw(self.loss_plot, "loss", stage, self.loss[stage], symbol="t")
        elif event.get("event") == "epoch" and event.get("val_dice") is not None:
            x = offset + float(event["epoch"])
            self.dice.setdefault(stage, []).append((x, float(event["val_dice"])))
            self._draw(self.dice_plot, "dice", stage, self.dice[stage], symbol="o")

    def _draw(self, plot, kind: str, stage: str, points: list[tuple[float, float]], symbol: str | None) -> None:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        colour = STAGE_COLOURS.get(stage, "#444")
        curve = self._curves.get((kind, stage))
        if curve is None:
            name = stage.replace("stage", "Stage ")
            curve = plot.plot(xs, ys, pen=pg.mkPen(colour, width=2), name=name, symbol=symbol,
                              symbolSize=5 if symbol == "t" else 6, symbolBrush=colour, symbolPen=None)
            self._curves[(kind, stage)] = curve
        else:
            curve.setData(xs, ys)
