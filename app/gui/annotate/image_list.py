"""The image list: names, a status colour per image and done/total, over thousands of rows.

A QListView with uniform row heights over a QAbstractListModel that only knows the
project's records (path + status); nothing is decoded to list an image, so a folder of
5,000 images lists instantly and costs a few hundred kilobytes. Status icons are four
cached swatches. A model mask's quality (0..1, higher = more trustworthy) is a coloured badge
with the number at the row's right, an unreadable file a red "unreadable" badge; the sort box
above the list orders it by name or most doubtful first (:mod:`app.gui.annotate.review_queue`).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from PySide6.QtCore import QAbstractListModel, QModelIndex, QRect, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QLabel,
    QListView,
    QSizePolicy,
    QStyledItemDelegate,
    QVBoxLayout,
    QWidget,
)

from app.gui.annotate.review_queue import SORT_MODES, quality_color
from engine.project import ImageRecord

QUALITY_ROLE = Qt.ItemDataRole.UserRole + 1  # float quality of a model mask, or None
PROBLEM_ROLE = Qt.ItemDataRole.UserRole + 2  # why the file could not be read, or None

STATUS_COLORS = {
    "new": QColor(120, 120, 120),
    "model": QColor(240, 200, 40),
    "corrected": QColor(40, 200, 90),
    "skipped": QColor(90, 130, 220),
}
STATUS_TEXT = {
    "new": "new",
    "model": "model mask (not reviewed)",
    "corrected": "corrected (final)",
    "skipped": "skipped",
}


class ImageListModel(QAbstractListModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.records: list[ImageRecord] = []
        self.qualities: dict[str, float] = {}  # rel_path -> newest model mask's quality
        self.unreadable: dict[str, str] = {}  # rel_path -> why the folder job could not read it
        self.problems: dict[str, str] = {}  # rel_path -> what is wrong (marked in the list)
        self._icons: dict[str, QIcon] = {}

    def set_records(self, records: list[ImageRecord]) -> None:
        self.beginResetModel()
        self.records = list(records)
        self.endResetModel()

    def set_problems(self, problems: dict[str, str]) -> None:
        self.problems = dict(problems)
        if self.records:
            self.dataChanged.emit(self.index(0), self.index(len(self.records) - 1))

    def update_record(self, row: int, record: ImageRecord) -> None:
        self.records[row] = record
        index = self.index(row)
        self.dataChanged.emit(index, index)

    def refresh_row(self, row: int) -> None:
        index = self.index(row)
        self.dataChanged.emit(index, index)

    def quality(self, row: int) -> float | None:
        """The quality shown for row ``row``: model masks only (others have been reviewed)."""
        record = self.records[row]
        return self.qualities.get(record.rel_path) if record.status == "model" else None

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.records)

    def _icon(self, status: str) -> QIcon:
        if status not in self._icons:
            pixmap = QPixmap(12, 12)
            pixmap.fill(STATUS_COLORS.get(status, QColor("grey")))
            self._icons[status] = QIcon(pixmap)
        return self._icons[status]

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        record = self.records[index.row()]
        problem = self.problems.get(record.rel_path)
        if role == Qt.ItemDataRole.DisplayRole:
            name = PurePosixPath(record.rel_path).name
            return f"\u26a0 {name}" if problem else name
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon(record.status)
        if role == Qt.ItemDataRole.ToolTipRole:
            text = f"{record.rel_path}\n{STATUS_TEXT.get(record.status, record.status)}"
            quality = self.quality(index.row())
            if quality is not None:
                text += f"\nquality {quality:.3f} (0..1, higher = more trustworthy)"
            if record.rel_path in self.unreadable:
                text += f"\nunreadable: {self.unreadable[record.rel_path]}"
            return f"{text}\n{problem}" if problem else text
        if role == Qt.ItemDataRole.UserRole:
            return record.status
        if role == QUALITY_ROLE:
            return self.quality(index.row())
        if role == PROBLEM_ROLE:
            return self.unreadable.get(record.rel_path)
        return None


class BadgeDelegate(QStyledItemDelegate):
    """The ordinary row, plus a right-aligned badge: the quality number on its colour, or
    "unreadable" in red."""

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        quality, problem = index.data(QUALITY_ROLE), index.data(PROBLEM_ROLE)
        if quality is None and problem is None:
            super().paint(painter, option, index)
            return
        text = "unreadable" if problem is not None else f"{quality:.3f}"
        color = QColor(200, 50, 50) if problem is not None else QColor(*quality_color(quality))
        width = option.fontMetrics.horizontalAdvance(text) + 10
        rect = option.rect
        badge = QRect(rect.right() - width - 2, rect.top() + 2, width, rect.height() - 4)
        option.rect = QRect(rect.left(), rect.top(), rect.width() - width - 6, rect.height())
        super().paint(painter, option, index)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawRoundedRect(badge, 4, 4)
        light = 0.299 * color.red() + 0.587 * color.green() + 0.114 * color.blue() > 150
        painter.setPen(QColor(20, 20, 20) if light else QColor("white"))
        painter.drawText(badge, int(Qt.AlignmentFlag.AlignCenter), text)
        painter.restore()


class ElidedLabel(QLabel):
    """One line that never asks for width: a longer text is elided (full text in the
    tooltip), so the dock, and with it the canvas under the mouse, never moves."""

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        shown = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, self.contentsRect().width())
        painter.drawText(self.contentsRect(), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), shown)


def status_legend() -> QWidget:
    """What the list's status colours mean (one swatch + words per status)."""
    legend = QWidget()
    grid = QGridLayout(legend)
    grid.setContentsMargins(2, 2, 2, 2)
    grid.setHorizontalSpacing(4)
    grid.setVerticalSpacing(1)
    for i, (status, color) in enumerate(STATUS_COLORS.items()):
        pixmap = QPixmap(10, 10)
        pixmap.fill(color)
        swatch = QLabel()
        swatch.setPixmap(pixmap)
        text = ElidedLabel(STATUS_TEXT[status])
        text.setObjectName(f"legend-{status}")
        grid.addWidget(swatch, i, 0)
        grid.addWidget(text, i, 1)
    grid.setColumnStretch(1, 1)
    return legend


class ImageList(QWidget):
    """List + a done/total line; emits the row the user picked."""

    image_chosen = Signal(int)
    sort_chosen = Signal(str)  # a key of review_queue.SORT_MODES

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model = ImageListModel(self)
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setItemDelegate(BadgeDelegate(self.view))
        self.view.setUniformItemSizes(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.view.clicked.connect(lambda index: self.image_chosen.emit(index.row()))
        self.view.activated.connect(lambda index: self.image_chosen.emit(index.row()))
        self.summary = ElidedLabel("no images")
        self.details = ElidedLabel("")
        self.legend = status_legend()
        self.sort = QComboBox()
        self.sort.setObjectName("image-sort")
        for key, text in SORT_MODES.items():
            self.sort.addItem(f"Sort: {text}", key)
        self.sort.setToolTip("Most doubtful first: model masks by quality, lowest first (D jumps there)")
        self.sort.currentIndexChanged.connect(lambda i: self.sort_chosen.emit(self.sort.itemData(i)))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.summary)
        layout.addWidget(self.details)
        layout.addWidget(self.sort)
        layout.addWidget(self.view)
        layout.addWidget(self.legend)

    def set_records(self, records: list[ImageRecord]) -> None:
        self.model.set_records(records)

    def set_sort(self, mode: str) -> None:
        """Show ``mode`` in the sort box (emits ``sort_chosen`` when it changes)."""
        self.sort.setCurrentIndex(self.sort.findData(mode))

    def set_current(self, row: int) -> None:
        index = self.model.index(row)
        self.view.setCurrentIndex(index)
        self.view.scrollTo(index)

    def set_counts(self, counts: dict[str, int]) -> None:
        self.summary.setText(f"Done {counts['done']} / {counts['total']}")
        self.details.setText(
            f"corrected {counts['corrected']}, skipped {counts['skipped']}, "
            f"model {counts['model']}, new {counts['new']}"
        )
