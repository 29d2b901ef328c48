"""The image canvas: shows the radiograph and mask overlays, turns mouse gestures into intent.

It draws and forwards; it never edits masks or calls the model. With the Box tool, the
boxes on the canvas are editable: pressing near a corner or an edge of a label's box (a few
screen pixels, any zoom: :mod:`app.gui.annotate.box_handles`) drags that side and emits
``box_edited`` for that label, so its mask follows as it does for a new box. Coordinates it emits are
original-image pixels (x, y) as floats: scene coordinates equal image pixel coordinates,
pixel (col, row) covering the square [col, col + 1) x [row, row + 1).

Large images: see :mod:`app.gui.annotate.overlay` - every paint costs about one viewport of pixels,
so a 4k x 5k image pans and zooms smoothly; mask edits repaint only what they changed.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsScene,
    QGraphicsView,
)

from app.gui.annotate.box_handles import CURSORS, BoxItem, drag_handle, hit_handle
from app.gui.annotate.mask_ops import Rect
from app.gui.annotate.overlay import ImageItem, MaskOverlay

TOOLS = ("box", "positive", "negative", "brush", "eraser", "pan", "window")
MIN_ZOOM, MAX_ZOOM = 0.01, 64.0


class Canvas(QGraphicsView):
    """QGraphicsView of one image. Signals carry image-pixel coordinates."""

    box_started = Signal()
    box_dragged = Signal(object, bool)  # (x0, y0, x1, y1) or None (cancelled), final
    box_edit_started = Signal(str)  # label whose box a handle drag is resizing
    box_edited = Signal(str, object, bool)  # label, (x0, y0, x1, y1), final
    point_clicked = Signal(float, float, bool)  # x, y, positive
    brush_stroke = Signal(object, object, str)  # (x, y) from, (x, y) to, "start" | "move" | "end"
    window_dragged = Signal(float, float, bool)  # dx, dy in screen pixels since press, final
    zoom_changed = Signal(float)
    cursor_moved = Signal(object)  # (x, y) image pixel under the mouse, or None off the image

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(QColor(24, 24, 28))
        # Zoom anchoring is done by hand (zoom_by(anchor=...)): Qt's AnchorUnderMouse reads the
        # last mouse-move scene point, which this view's own mouse handling never feeds it.
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState)
        self.setMouseTracking(True)
        # No scroll bars: pan is middle/Space drag, and a bar appearing mid-zoom would shrink
        # the viewport and shift the image under the cursor.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.image_item: ImageItem | None = None
        self.image_size: tuple[int, int] | None = None  # (H, W)
        self.overlays: dict[str, MaskOverlay] = {}
        self.box_items: dict[str, BoxItem] = {}
        self.point_items: dict[str, list[QGraphicsEllipseItem]] = {}
        self.tool = "box"
        self.brush_radius = 10
        self._drag: str | None = None
        self._anchor = QPointF()
        self._last_scene = QPointF()
        self._press_pos = QPointF()
        self._space = False
        self._fitted = True
        self._edit: tuple[str, str, tuple[float, float, float, float]] | None = None  # label, handle, box at press
        self._hover_handle: str | None = None
        self.handle_labels: set[str] | None = None  # boxes with grabbable handles; None = all
        cursor_pen = QPen(QColor(255, 255, 255, 220), 1, Qt.PenStyle.DashLine)
        cursor_pen.setCosmetic(True)
        self._brush_cursor = QGraphicsEllipseItem()
        self._brush_cursor.setPen(cursor_pen)
        self._brush_cursor.setZValue(100)
        self._brush_cursor.setVisible(False)
        self.scene().addItem(self._brush_cursor)

    # -- content ---------------------------------------------------------------------------
    def set_image(self, pixels: np.ndarray | None, fit: bool = True) -> None:
        """Show uint8 grey/RGB ``pixels`` (converted to a QImage once); None clears the canvas."""
        for label in list(self.overlays):
            self.set_mask(label, None)
        for label in list(self.box_items):
            self.set_box(label, None)
        for label in list(self.point_items):
            self.set_points(label, [], [])
        if pixels is None:
            if self.image_item is not None:
                self.scene().removeItem(self.image_item)
            self.image_item, self.image_size = None, None
            return
        if self.image_item is None:
            self.image_item = ImageItem(pixels)
            self.scene().addItem(self.image_item)
        else:
            self.image_item.set_pixels(pixels)
        size = (int(pixels.shape[0]), int(pixels.shape[1]))
        new_size = size != self.image_size
        self.image_size = size
        # A margin of one image size around it: the view can scroll (so zoom holds the point
        # under the cursor) even while the image is narrower than the window.
        self.scene().setSceneRect(QRectF(-size[1], -size[0], 3 * size[1], 3 * size[0]))
        if fit and new_size:
            self.fit()

    def update_pixels(self, pixels: np.ndarray) -> None:
        """New display pixels of the same size (re-windowing); keeps zoom and overlays."""
        if self.image_item is not None:
            self.image_item.set_pixels(pixels)

    def overlay(self, label: str, color: QColor) -> MaskOverlay:
        if label not in self.overlays:
            self.overlays[label] = MaskOverlay(self.scene(), color, z=10 + len(self.overlays))
        return self.overlays[label]

    def set_mask(self, label: str, mask: np.ndarray | None, color: QColor | None = None) -> None:
        if mask is None and label not in self.overlays:
            return
        self.overlay(label, color or QColor("yellow")).set_mask(mask)

    def update_mask_rect(self, label: str, mask: np.ndarray, rect: Rect | None, color: QColor) -> None:
        if rect is not None:
            self.overlay(label, color).update_rect(mask, rect)

    def style_masks(self, opacity: float, outline: bool, visible: bool, masks: dict[str, np.ndarray]) -> None:
        for label, overlay in self.overlays.items():
            overlay.style(opacity, outline, visible, masks.get(label))

    def set_box(self, label: str, box: tuple[float, float, float, float] | None, color: QColor | None = None) -> None:
        item = self.box_items.get(label)
        if box is None:
            if item is not None:
                self.scene().removeItem(item)
                del self.box_items[label]
            return
        if item is None:
            item = BoxItem(color or QColor("yellow"))
            self.scene().addItem(item)
            self.box_items[label] = item
        item.set_box(box)

    def set_points(self, label: str, points, labels, color: QColor | None = None) -> None:
        for item in self.point_items.pop(label, []):
            self.scene().removeItem(item)
        items = []
        for (x, y), positive in zip(points, labels, strict=True):
            item = QGraphicsEllipseItem(-5, -5, 10, 10)
            item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            item.setBrush(QBrush(QColor(40, 220, 90) if positive else QColor(235, 60, 60)))
            pen = QPen(color or QColor("white"), 2)
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setPos(QPointF(x, y))
            item.setZValue(60)
            self.scene().addItem(item)
            items.append(item)
        if items:
            self.point_items[label] = items

    # -- view ------------------------------------------------------------------------------
    def fit(self) -> None:
        """Whole image in view; it stays fitted when the window resizes until the user zooms."""
        self._fitted = True
        if self.image_size is not None:
            h, w = self.image_size
            self.fitInView(QRectF(0, 0, w, h), Qt.AspectRatioMode.KeepAspectRatio)
            self.zoom_changed.emit(self.zoom)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fitted:
            self.fit()

    @property
    def zoom(self) -> float:
        return float(self.transform().m11())

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the image point under viewport position ``anchor`` (default: the
        viewport centre) where it is, so a wheel zoom never drifts away from the cursor."""
        self._fitted = False
        if anchor is None:
            anchor = QPointF(self.viewport().rect().center())
        inverse, _ok = self.viewportTransform().inverted()
        fixed = inverse.map(anchor)  # scene point under the anchor, sub-pixel exact
        target = min(MAX_ZOOM, max(MIN_ZOOM, self.zoom * factor))
        self.scale(target / self.zoom, target / self.zoom)
        moved = self.viewportTransform().map(fixed) - anchor
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + round(moved.x()))
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + round(moved.y()))
        self.zoom_changed.emit(self.zoom)

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(tool)
        self.tool = tool
        shapes = {"pan": Qt.CursorShape.OpenHandCursor, "window": Qt.CursorShape.SizeAllCursor}
        if tool in shapes:
            self.viewport().setCursor(shapes[tool])
        else:
            self.viewport().unsetCursor()
        self._update_brush_cursor(self._last_scene)

    def set_brush_radius(self, radius: int) -> None:
        self.brush_radius = int(radius)
        self._update_brush_cursor(self._last_scene)

    def image_to_viewport(self, x: float, y: float):
        """Viewport pixel of image coordinate (x, y) (what tests and scripts click on)."""
        return self.mapFromScene(QPointF(x, y))

    # -- mouse -----------------------------------------------------------------------------
    def _scene_pos(self, event) -> QPointF:
        return self.mapToScene(event.position().toPoint())

    def _clip(self, p: QPointF) -> QPointF:
        h, w = self.image_size
        return QPointF(min(max(p.x(), 0.0), float(w)), min(max(p.y(), 0.0), float(h)))

    def _inside(self, p: QPointF) -> bool:
        h, w = self.image_size
        return 0 <= p.x() < w and 0 <= p.y() < h

    def mousePressEvent(self, event) -> None:
        if self.image_item is None:
            return super().mousePressEvent(event)
        pos = self._scene_pos(event)
        mods = event.modifiers()
        button = event.button()
        self._press_pos = event.position()
        left = button == Qt.MouseButton.LeftButton
        if button == Qt.MouseButton.MiddleButton or (left and (self._space or self.tool == "pan")):
            self._drag = "pan"
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
        elif left and (mods & Qt.KeyboardModifier.ControlModifier or self.tool == "window"):
            self._drag = "window"
        elif button == Qt.MouseButton.RightButton and self.tool in ("box", "positive", "negative"):
            # Right-click = negative point: desktops leave it alone (Alt+drag moves windows)
            if self._inside(pos):
                self.point_clicked.emit(pos.x(), pos.y(), False)
        elif button == Qt.MouseButton.LeftButton:
            shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
            alt = bool(mods & Qt.KeyboardModifier.AltModifier)
            if (self.tool == "box" and (shift or alt)) or self.tool in ("positive", "negative"):
                if self._inside(pos):
                    positive = shift or (self.tool == "positive" and not alt)
                    self.point_clicked.emit(pos.x(), pos.y(), positive)
            elif self.tool == "box" and (hit := self.handle_at(event.position())) is not None:
                label, handle = hit
                self._drag = "edit"
                self._edit = (label, handle, self.box_of(label))
                self.box_edit_started.emit(label)
            elif self.tool == "box":
                self._drag = "box"
                self._anchor = self._clip(pos)
                self.box_started.emit()
            elif self.tool in ("brush", "eraser"):
                self._drag = "brush"
                self._last_scene = pos
                self.brush_stroke.emit((pos.x(), pos.y()), (pos.x(), pos.y()), "start")
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        pos = self._scene_pos(event)
        if self.image_item is None:
            return super().mouseMoveEvent(event)
        if self._drag == "pan":
            self._fitted = False
            delta = event.position() - self._press_pos
            self._press_pos = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - round(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - round(delta.y()))
        elif self._drag == "window":
            delta = event.position() - self._press_pos
            self.window_dragged.emit(delta.x(), delta.y(), False)
        elif self._drag == "box":
            box = self._box_to(pos)
            if box is not None:
                self.box_dragged.emit(box, False)
        elif self._drag == "edit" and self._edit is not None and self.image_size is not None:
            label, handle, start = self._edit
            self.box_edited.emit(label, drag_handle(start, handle, pos.x(), pos.y(), self.image_size), False)
        elif self._drag is None:
            self._hover(event.position())
        elif self._drag == "brush":
            self.brush_stroke.emit((self._last_scene.x(), self._last_scene.y()), (pos.x(), pos.y()), "move")
            self._last_scene = pos
        self._update_brush_cursor(pos)
        self.cursor_moved.emit((int(pos.x() // 1), int(pos.y() // 1)) if self._inside(pos) else None)
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        pos = self._scene_pos(event)
        drag, self._drag = self._drag, None
        if drag == "pan":
            self.set_tool(self.tool)  # back to the tool's own cursor
        elif drag == "window":
            delta = event.position() - self._press_pos
            self.window_dragged.emit(delta.x(), delta.y(), True)
        elif drag == "box":
            self.box_dragged.emit(self._box_to(pos), True)
        elif drag == "edit" and self._edit is not None and self.image_size is not None:
            label, handle, start = self._edit
            self._edit = None
            self.box_edited.emit(label, drag_handle(start, handle, pos.x(), pos.y(), self.image_size), True)
        elif drag == "brush":
            self.brush_stroke.emit((self._last_scene.x(), self._last_scene.y()), (pos.x(), pos.y()), "end")
        event.accept()

    def box_of(self, label: str) -> tuple[float, float, float, float]:
        rect = self.box_items[label].rect()
        return (rect.left(), rect.top(), rect.right(), rect.bottom())

    def handle_at(self, viewport_pos: QPointF) -> tuple[str, str] | None:
        """(label, handle) of the box corner or edge under viewport position ``viewport_pos``
        (nearest wins where two boxes meet), or None."""
        transform = self.viewportTransform()
        best: tuple[float, str, str] | None = None
        for label, item in self.box_items.items():
            if self.handle_labels is not None and label not in self.handle_labels:
                continue
            rect = item.rect()
            a, b = transform.map(rect.topLeft()), transform.map(rect.bottomRight())
            hit = hit_handle((a.x(), a.y(), b.x(), b.y()), viewport_pos.x(), viewport_pos.y())
            if hit is not None and (best is None or hit[1] < best[0]):
                best = (hit[1], label, hit[0])
        return None if best is None else (best[1], best[2])

    def _hover(self, viewport_pos: QPointF) -> None:
        """The resize cursor over a box handle (Box tool), the tool's own cursor elsewhere."""
        hit = self.handle_at(viewport_pos) if self.tool == "box" and not self._space else None
        handle = hit[1] if hit is not None else None
        if handle == self._hover_handle:
            return
        self._hover_handle = handle
        if handle is not None:
            self.viewport().setCursor(CURSORS[handle])
        else:
            self.set_tool(self.tool)

    def _box_to(self, pos: QPointF) -> tuple[float, float, float, float] | None:
        end = self._clip(pos)
        x0, x1 = sorted((self._anchor.x(), end.x()))
        y0, y1 = sorted((self._anchor.y(), end.y()))
        if x1 - x0 < 1.0 or y1 - y0 < 1.0:
            return None
        return (x0, y0, x1, y1)

    def wheelEvent(self, event) -> None:
        delta = event.angleDelta().y()
        if delta:
            self.zoom_by(1.0015 ** delta, event.position())
        event.accept()

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.set_tool(self.tool)
            event.accept()
            return
        super().keyReleaseEvent(event)

    def leaveEvent(self, event) -> None:
        self._brush_cursor.setVisible(False)
        self.cursor_moved.emit(None)
        super().leaveEvent(event)

    def _update_brush_cursor(self, pos: QPointF) -> None:
        show = self.tool in ("brush", "eraser") and self.image_item is not None
        self._brush_cursor.setVisible(show)
        if show:
            r = self.brush_radius + 0.5
            self._brush_cursor.setRect(QRectF(pos.x() - r, pos.y() - r, 2 * r, 2 * r))
