"""Status bar fields: model, device, embedding time, last box-to-mask latency, busy state."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar


class StatusFields:
    """Permanent labels in the window's status bar; the window sets their text."""

    def __init__(self, bar: QStatusBar) -> None:
        self.bar = bar
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate: "working"
        self.busy.setMaximumWidth(90)
        self.busy.setMaximumHeight(14)
        self.busy.setVisible(False)
        self.busy_text = QLabel("")
        self.model = QLabel("model: -")
        self.device = QLabel("device: -")
        self.embed = QLabel("embedding: -")
        self.latency = QLabel("box->mask: -")
        self.position = QLabel("")
        for widget in (self.busy_text, self.busy, self.model, self.device, self.embed, self.latency, self.position):
            bar.addPermanentWidget(widget)

    def set_busy(self, what: str) -> None:
        self.busy.setVisible(bool(what))
        self.busy_text.setText(f"{what}..." if what else "")

    def set_model(self, name: str | None, device: str | None) -> None:
        self.model.setText(f"model: {name}" if name else "model: none")
        self.device.setText(f"device: {device}" if device else "device: -")

    def set_embedding(self, seconds: float, cached: bool) -> None:
        self.embed.setText(f"embedding: {seconds * 1000:.0f} ms" + (" (cached)" if cached else ""))

    def set_latency(self, seconds: float) -> None:
        self.latency.setText(f"box->mask: {seconds * 1000:.0f} ms")
