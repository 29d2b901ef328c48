"""End-of-run summary table (current vs new model on the held-back images) and "Use new model".

Widgets only; the numbers come from :func:`app.gui.trainer.summary.compare_models`.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.sam import styled_name

ROWS = ("Held-back Dice (mean)", "Wilcoxon p (paired)", "Trainable parameters", "Model file size", "Model")


def fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if digits >= 4 else f"{value:.{digits}g}"


def fmt_size(nbytes: int | None, int8: bool | None) -> str:
    if not nbytes:
        return "-"
    return f"{nbytes / 1e6:.1f} MB" + (" (INT8)" if int8 else " (FP32)")


class ResultView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(len(ROWS), 2)
        self.table.setHorizontalHeaderLabels(["Current model", "New model"])
        self.table.setVerticalHeaderLabels(list(ROWS))
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(170)
        self.table.setMaximumHeight(170)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setMinimumHeight(3 * self.note.fontMetrics().lineSpacing())
        self.use_button = QPushButton("Use new model")
        self.use_button.setToolTip("Register the new INT8 model in the project and use it for the next images")
        self.use_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addWidget(self.note)
        layout.addWidget(self.use_button)

    def clear(self) -> None:
        self.table.clearContents()
        self.note.setText("")
        self.use_button.setEnabled(False)

    def show_summary(self, s: dict[str, Any]) -> None:
        """Fill the table from :func:`app.gui.trainer.summary.compare_models`'s summary."""
        cur, new = s.get("current", {}), s.get("new", {})
        total, trainable = s.get("total_params"), s.get("trainable_params")
        cells = (
            (fmt(s.get("dice_before")), fmt(s.get("dice_after"))),
            ("", f"{fmt(s.get('p_wilcoxon'), 3)} (n = {s.get('n_pairs')})"),
            (f"{total:,} (all)" if total else "-", f"{trainable:,} (AdaLoRA + decoder)" if trainable else "-"),
            (fmt_size(cur.get("bytes"), cur.get("int8")), fmt_size(new.get("bytes"), new.get("int8"))),
            (with_style(cur), new.get("name", "-")),
        )
        for r, (a, b) in enumerate(cells):
            self.table.setItem(r, 0, QTableWidgetItem(a))
            self.table.setItem(r, 1, QTableWidgetItem(b))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        note = (f"{s.get('held_back')} held-back image(s), trained on {s.get('train_images')}; one box around both "
                "lungs from the corrected mask; p from the paired Wilcoxon signed-rank test.")
        if s.get("p_note"):
            note += f" Note: {s['p_note']}"
        self.note.setText(note)


def with_style(model: dict[str, Any]) -> str:
    """A model's name, plus the mask style it was scored in when that is a named one."""
    return styled_name(model.get("name", "-"), model.get("style"))
