"""Status bar fields: model, device, embedding time, last box-to-mask latency, busy state,
and the cursor's image pixel with its value (as ITK-SNAP, Slicer and CVAT show)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from engine.imaging import LoadedImage


def pixel_readout(image: LoadedImage | None, xy: tuple[int, int] | None) -> str:
    """'x 12  y 40  value 873': the file's own value (DICOM: modality-LUT units), else grey/RGB."""
    if image is None or xy is None:
        return ""
    x, y = xy
    if not (0 <= y < image.height and 0 <= x < image.width):
        return ""
    if image.raw is not None:
        value = f"{float(image.raw[y, x]):g}"
    else:
        px = image.pixels[y, x]
        value = ", ".join(str(int(v)) for v in px) if image.pixels.ndim == 3 else str(int(px))
    return f"x {x}  y {y}  value {value}"


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
        self.position.setMinimumWidth(190)  # room for 'x 4095  y 4095  value 65535' without jitter
        self.position.setContentsMargins(14, 0, 0, 0)  # apart from the latency it would run into
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

    def set_position(self, image: LoadedImage | None, xy: tuple[int, int] | None) -> None:
        self.position.setText(pixel_readout(image, xy))
