"""End-of-run summary: the verdict in plain words, the table (current vs new model on the
held-back images) with the confidence interval of the difference, and the choice between
"Keep current model" and "Use new model".

Widgets only; the numbers and the verdict come from :func:`trainer.finetune.compare_models`.
Keeping the current model is the default (the focused, default button) unless the verdict is
"better". The table fits the pane's column: the two model columns share its width, cells wrap
(model names at their hyphens too), the rows about the pair (difference, p) span both columns,
and the rows grow to their wrapped text, so nothing is clipped or hidden behind a scroll bar.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.sam import styled_name

ROWS = ("Held-back Dice", "Difference\n(new - current)", "Wilcoxon p", "Trainable\nparameters",
        "File size", "Model")
PAIR_ROWS = (1, 2)
"""Rows about the two models together: one cell across both columns."""
BREAK = "\u200b"  # zero-width space: a place a long name may wrap
VERDICT_STYLES = {
    "better": "background: #1b5e20; color: white; padding: 4px;",
    "not_better": "background: #7a5b00; color: white; padding: 4px;",
    "unclear": "background: #7a5b00; color: white; padding: 4px;",
    "too_few": "background: #7a5b00; color: white; padding: 4px;",
}


def fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if digits >= 4 else f"{value:.{digits}g}"


def fmt_size(nbytes: int | None, int8: bool | None) -> str:
    if not nbytes:
        return "-"
    return f"{nbytes / 1e6:.1f} MB" + (" (INT8)" if int8 else " (FP32)")


def fmt_diff(diff: float | None, ci95: list[float] | None) -> str:
    """``+0.0012 (95% CI -0.0030 to +0.0054)``; the interval is what a user should read."""
    if diff is None:
        return "-"
    return f"{diff:+.4f}" + (f" (95% CI {ci95[0]:+.4f} to {ci95[1]:+.4f})" if ci95 else " (no CI: under 2 images)")


class ResultView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)
        self.verdict.setVisible(False)
        self.table = QTableWidget(len(ROWS), 2)
        self.table.setHorizontalHeaderLabels(["Current model", "New model"])
        self.table.setVerticalHeaderLabels(list(ROWS))
        self.table.setWordWrap(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        for row in PAIR_ROWS:
            self.table.setSpan(row, 0, 1, 2)
        self.table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.table.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setMinimumHeight(3 * self.note.fontMetrics().lineSpacing())
        self.keep_button = QPushButton("Keep current model")
        self.keep_button.setToolTip("Leave the project's model as it is; the new model stays in the run folder")
        self.use_button = QPushButton("Use new model")
        self.use_button.setToolTip("Register the new INT8 model in the project and use it for the next images")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.verdict)
        layout.addWidget(self.table)
        layout.addWidget(self.note)
        row = QHBoxLayout()
        row.addWidget(self.keep_button)
        row.addWidget(self.use_button)
        layout.addLayout(row)
        self.clear()

    def clear(self) -> None:
        self.table.clearContents()
        self.note.setText("")
        self.verdict.setText("")
        self.verdict.setVisible(False)
        self.set_decided()

    def set_choice(self, better: bool) -> None:
        """Offer both; the default (Enter, focus) is the new model only when it is better."""
        self.keep_button.setEnabled(True)
        self.use_button.setEnabled(True)
        self.use_button.setText("Use new model" if better else "Use new model anyway")
        default, other = (self.use_button, self.keep_button) if better else (self.keep_button, self.use_button)
        other.setDefault(False)
        other.setAutoDefault(False)
        default.setAutoDefault(True)
        default.setDefault(True)
        default.setFocus()

    def set_decided(self) -> None:
        """No choice pending (nothing run yet, or the user chose)."""
        for button in (self.keep_button, self.use_button):
            button.setEnabled(False)
            button.setDefault(False)

    @property
    def default_choice(self) -> str:
        """``keep`` or ``use``: what Enter chooses (``none`` without a pending choice)."""
        if self.use_button.isEnabled() and self.use_button.isDefault():
            return "use"
        return "keep" if self.keep_button.isEnabled() and self.keep_button.isDefault() else "none"

    def show_summary(self, s: dict[str, Any]) -> None:
        """Fill the verdict and the table from :func:`trainer.finetune.compare_models`'s summary."""
        cur, new = s.get("current", {}), s.get("new", {})
        total, trainable = s.get("total_params"), s.get("trainable_params")
        said = s.get("verdict") or {}
        cells = (
            (fmt(s.get("dice_before")), fmt(s.get("dice_after"))),
            (fmt_diff(s.get("dice_diff"), s.get("ci95")), ""),
            (f"{fmt(s.get('p_wilcoxon'), 3)} (paired, n = {s.get('n_pairs')})", ""),
            (f"{total:,} (all)" if total else "-", f"{trainable:,} (AdaLoRA + decoder)" if trainable else "-"),
            (fmt_size(cur.get("bytes"), cur.get("int8")), fmt_size(new.get("bytes"), new.get("int8"))),
            (with_style(cur), new.get("name", "-")),
        )
        for r, (a, b) in enumerate(cells):
            for c, text in enumerate((a, b)):
                item = QTableWidgetItem(text.replace("-", "-" + BREAK) if r == len(cells) - 1 else text)
                item.setToolTip(text)
                self.table.setItem(r, c, item)
        self.table.resizeRowsToContents()
        self.verdict.setText(said.get("text", ""))
        self.verdict.setStyleSheet(VERDICT_STYLES.get(said.get("kind", ""), ""))
        self.verdict.setVisible(bool(said))
        note = (f"{s.get('held_back')} held-back image(s), trained on {s.get('train_images')}; one box around both "
                "lungs from the corrected mask; p from the paired Wilcoxon signed-rank test; at least "
                f"{s.get('min_held_back', 5)} held-back images are needed to tell two models apart.")
        if s.get("p_note"):
            note += f" Note: {s['p_note']}"
        self.note.setText(note)
        self.set_choice(better=said.get("kind") == "better")


def with_style(model: dict[str, Any]) -> str:
    """A model's name, plus the mask style it was scored in when that is a named one."""
    return styled_name(model.get("name", "-"), model.get("style"))
