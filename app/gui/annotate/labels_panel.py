"""Side panel: which label is being drawn, its area, how masks look, brush size, and the
anatomy note.

Labels are anatomical (the PATIENT's right and left, as stored by the project): on a
standard PA/AP chest radiograph the patient's left lung is on the image's RIGHT, so the
panel says so next to the choice. Each label's area stands beside it (the "Lungs" row shows
both lungs, the union of every mask), with the unit and where the pixel spacing came from
under the note. It only shows state and forwards choices as signals.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QRadioButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.annotate.mask_ops import MAX_BRUSH, MIN_BRUSH
from app.gui.preferences import (
    BRUSH_RADIUS,
    OVERWRITE,
    get_flag,
    get_preference,
    set_flag,
    set_preference,
)
from engine.measure import LungAreas, format_area, spacing_note

LABEL_ORDER = ("right lung", "left lung", "lungs")
"""Order of the 1/2/3 keys: image left to right, then both."""

LABEL_COLORS = {
    "right lung": QColor(30, 160, 255),
    "left lung": QColor(255, 150, 20),
    "lungs": QColor(40, 220, 90),
}

LABEL_TEXT = {
    "right lung": "1  Right lung",
    "left lung": "2  Left lung",
    "lungs": "3  Lungs",
}

LABEL_HINT = {
    "right lung": "patient's right = image LEFT",
    "left lung": "patient's left = image RIGHT",
    "lungs": "both, one label",
}
"""Under each label, small and grey: the panel stays narrow (the canvas keeps its width, also
beside the trainer pane) and the side still reads at a glance."""

HINT_STYLE = "color: #b0b0b0; font-size: 11px;"

PANEL_WIDTH = 300
"""The width the panel asks for (its wrapped notes would ask for ~500 px): the canvas is what
the user came for, and the trainer pane opens in a column of its own beside this one."""

ANATOMY_NOTE = (
    "Labels are anatomical: the patient's left lung appears on the image's right "
    "(standard PA/AP view, patient facing you)."
)

AREA_WIDEST = "100,000,000 px²"
"""Room kept for an area beside its label (the largest image we open, MAX_PIXELS, all lung),
so the panel never asks for more width as masks change and the canvas never shifts."""

SPACING_TIP = {
    "calibrated": "Pixel spacing from the file's PixelSpacing: the size at the patient as the "
                  "modality calibrated it.",
    "corrected": "Pixel spacing from the detector (ImagerPixelSpacing) divided by the file's "
                 "estimated radiographic magnification: the size at the patient.",
    "at detector": "Pixel spacing at the detector (ImagerPixelSpacing), not corrected for "
                   "magnification: areas overstate the anatomy by the magnification squared "
                   "(about 1.2x for a PA chest).",
    None: "The image states no pixel spacing (not a DICOM file, or no spacing in it): areas "
          "are in pixels.",
}

STYLE_TIP = (
    "The annotation convention the model draws; changing it redraws every model-drawn label of the image. "
    "'visible': the radiographically visible lung (COVID-QU-Ex). 'anatomical': also the lung "
    "behind the heart and in the posterior recesses, as radiologists often draw it."
)


def swatch(color: QColor, size: int = 12) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(color)
    return pixmap


def remembered_radius(default: int = 10) -> int:
    """The brush radius of the last session (a site works at one image scale)."""
    try:
        return max(MIN_BRUSH, min(MAX_BRUSH, int(get_preference(BRUSH_RADIUS) or default)))
    except ValueError:
        return default


class LabelsPanel(QWidget):
    label_chosen = Signal(str)
    opacity_changed = Signal(float)
    outline_toggled = Signal(bool)
    brush_changed = Signal(int)
    style_chosen = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        box = QGroupBox("Label")
        box_layout = QGridLayout(box)
        box_layout.setColumnStretch(0, 1)
        self.group = QButtonGroup(self)
        self.buttons: dict[str, QRadioButton] = {}
        self.areas: dict[str, QLabel] = {}
        self.hints: dict[str, QLabel] = {}
        for index, label in enumerate(LABEL_ORDER):
            row = 2 * index
            button = QRadioButton(LABEL_TEXT[label])
            button.setIcon(swatch(LABEL_COLORS[label]))
            button.setToolTip(f"{LABEL_TEXT[label].split(maxsplit=1)[1]}: {LABEL_HINT[label]} (key {index + 1})")
            button.toggled.connect(lambda on, name=label: on and self.label_chosen.emit(name))
            self.group.addButton(button)
            box_layout.addWidget(button, row, 0)
            self.buttons[label] = button
            area = QLabel("")
            area.setObjectName(f"area-{label}")
            area.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            area.setFixedWidth(area.fontMetrics().horizontalAdvance(AREA_WIDEST) + 4)
            area.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
            box_layout.addWidget(area, row, 1)
            self.areas[label] = area
            hint = QLabel(LABEL_HINT[label])
            hint.setObjectName(f"hint-{label}")
            hint.setStyleSheet(HINT_STYLE)
            hint.setContentsMargins(26, 0, 0, 2)  # under the text, past the radio mark and swatch
            box_layout.addWidget(hint, row + 1, 0, 1, 2)
            self.hints[label] = hint
        self.area_note = QLabel("")
        self.area_note.setWordWrap(True)
        self.area_note.setStyleSheet(HINT_STYLE)
        self.area_note.setVisible(False)
        box_layout.addWidget(self.area_note, 2 * len(LABEL_ORDER), 0, 1, 2)
        self.note = QLabel(ANATOMY_NOTE)
        self.note.setWordWrap(True)
        self.note.setStyleSheet(HINT_STYLE)
        box_layout.addWidget(self.note, 2 * len(LABEL_ORDER) + 1, 0, 1, 2)
        layout.addWidget(box)

        view = QGroupBox("Display and tools")
        form = QFormLayout(view)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.opacity.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100.0))
        form.addRow("Mask opacity", self.opacity)
        self.outline = QCheckBox("Outline only (O)")
        self.outline.toggled.connect(self.outline_toggled)
        form.addRow(self.outline)
        self.brush = QSpinBox()
        self.brush.setRange(MIN_BRUSH, MAX_BRUSH)
        self.brush.setValue(remembered_radius())
        self.brush.setSuffix(" px")
        self.brush.valueChanged.connect(self.brush_changed)
        self.brush.valueChanged.connect(lambda v: set_preference(BRUSH_RADIUS, str(v)))
        form.addRow("Brush radius ([ / ])", self.brush)
        self.overwrite = QCheckBox("Brush overwrites the other lung")
        self.overwrite.setToolTip(
            "One pixel belongs to one lung. Off: painting a lung skips the other lung's pixels. "
            "On: painting a lung takes them from the other lung."
        )
        self.overwrite.setChecked(get_flag(OVERWRITE))
        self.overwrite.toggled.connect(lambda on: set_flag(OVERWRITE, on))
        form.addRow(self.overwrite)
        layout.addWidget(view)

        self.style_box = QGroupBox("Mask style")
        style_layout = QVBoxLayout(self.style_box)
        self.style = QComboBox()
        self.style.setToolTip(STYLE_TIP)
        self.style.currentTextChanged.connect(lambda name: name and self.style_chosen.emit(name))
        style_layout.addWidget(self.style)
        self.style_note = QLabel(STYLE_TIP)
        self.style_note.setWordWrap(True)
        self.style_note.setStyleSheet(HINT_STYLE)
        style_layout.addWidget(self.style_note)
        self.style_box.setVisible(False)
        layout.addWidget(self.style_box)

        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.info)
        layout.addStretch(1)
        self.buttons["lungs"].setChecked(True)

    def sizeHint(self) -> QSize:
        return QSize(max(PANEL_WIDTH, self.minimumSizeHint().width()), super().sizeHint().height())

    def set_styles(self, names: list[str] | tuple[str, ...], current: str | None) -> str:
        """Offer the model's mask styles (hidden when it has one); returns the selected one."""
        chosen = current if current in names else names[0]
        self.style.blockSignals(True)
        self.style.clear()
        self.style.addItems(list(names))
        self.style.setCurrentText(chosen)
        self.style.blockSignals(False)
        self.style_box.setVisible(len(names) > 1)
        return chosen

    def set_areas(self, areas: LungAreas | None) -> None:
        """Each label's area beside it (blank: not drawn on its own, or nothing drawn yet) and
        the unit with the spacing's provenance below (hidden with no image); the full line is
        the tooltip."""
        drawn = areas is not None and (areas.left, areas.right, areas.both) != (None, None, 0)
        values = {
            "right lung": areas.right if areas else None,
            "left lung": areas.left if areas else None,
            "lungs": areas.both if areas and drawn else None,
        }
        for label, value in values.items():
            text = format_area(value, areas.unit) if areas is not None and value is not None else ""
            self.areas[label].setText(text)
            self.areas[label].setToolTip(areas.text if areas is not None else "")
        self.area_note.setVisible(areas is not None)
        if areas is not None:
            self.area_note.setText(f"Areas in {areas.unit}: {spacing_note(areas.spacing)}")
            self.area_note.setToolTip(f"{areas.text}\n{SPACING_TIP[areas.spacing_source]}")

    def set_label(self, label: str) -> None:
        self.buttons[label].setChecked(True)

    @property
    def label(self) -> str:
        return next(name for name, b in self.buttons.items() if b.isChecked())
