"""Scene items that draw pixels: the radiograph and one mask overlay per label.

Both paint only the exposed part, at the resolution the screen needs: zoomed out, the
radiograph comes from a cached area-averaged copy and the mask is sampled every n-th pixel,
so a 4k x 5k image costs about one viewport of pixels per paint, never 20 MP. The mask item
holds a *reference* to the session's bool array and converts the visible slice at paint
time, so a new model mask or a brush dab costs nothing on the GUI thread until it is drawn.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsScene

from app.gui.annotate.mask_ops import Rect

MAX_LEVEL = 64


def grey_or_rgb_qimage(pixels: np.ndarray) -> QImage:
    """A QImage owning a copy of uint8 HxW (grey) or HxWx3 (RGB) pixels."""
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    fmt = QImage.Format.Format_Grayscale8 if pixels.ndim == 2 else QImage.Format.Format_RGB888
    return QImage(pixels.data, w, h, pixels.strides[0], fmt).copy()


def mask_qimage(mask: np.ndarray, color: QColor) -> QImage:
    """Indexed image of a bool mask: ``color`` where True, transparent elsewhere (owns its data)."""
    buf = np.ascontiguousarray(mask).view(np.uint8)
    h, w = buf.shape
    image = QImage(buf.data, w, h, buf.strides[0], QImage.Format.Format_Indexed8)
    image.setColorTable([0, color.rgba()])
    return image.copy()


def level_for(scale: float) -> int:
    """Largest power-of-two step that still gives >= 1 source sample per screen pixel."""
    factor = 1
    while scale * factor * 2 <= 1.0 and factor < MAX_LEVEL:
        factor *= 2
    return factor


def exposed_pixels(exposed: QRectF, width: int, height: int, step: int) -> tuple[int, int, int, int] | None:
    """Integer pixel rectangle covering ``exposed``, aligned to ``step``, clipped to the image."""
    x0 = max(0, int(math.floor(exposed.left())) // step * step)
    y0 = max(0, int(math.floor(exposed.top())) // step * step)
    x1 = min(width, int(math.ceil(exposed.right())))
    y1 = min(height, int(math.ceil(exposed.bottom())))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


class ImageItem(QGraphicsItem):
    """The radiograph, one QImage converted once; zoomed out, a cached downscaled copy."""

    def __init__(self, pixels: np.ndarray) -> None:
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption)
        self.set_pixels(pixels)

    def set_pixels(self, pixels: np.ndarray) -> None:
        self.prepareGeometryChange()
        self.pixels = pixels
        self.image = grey_or_rgb_qimage(pixels)
        self._levels: dict[int, QImage] = {1: self.image}
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self.image.width(), self.image.height())

    def _level(self, factor: int) -> QImage:
        if factor not in self._levels:
            h, w = self.pixels.shape[:2]
            size = (max(1, w // factor), max(1, h // factor))
            self._levels[factor] = grey_or_rgb_qimage(cv2.resize(self.pixels, size, interpolation=cv2.INTER_AREA))
        return self._levels[factor]

    def paint(self, painter: QPainter, option, widget=None) -> None:
        exposed = option.exposedRect.intersected(self.boundingRect())
        if exposed.isEmpty():
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        factor = level_for(painter.worldTransform().m11())
        image = self._level(factor)
        fx = image.width() / self.image.width()
        fy = image.height() / self.image.height()
        source = QRectF(exposed.x() * fx, exposed.y() * fy, exposed.width() * fx, exposed.height() * fy)
        painter.drawImage(exposed, image, source)


class MaskItem(QGraphicsItem):
    """A bool mask drawn in one colour; converts only the exposed, screen-resolution slice."""

    def __init__(self, mask: np.ndarray, color: QColor) -> None:
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption)
        self.color = QColor(color)
        self.mask = mask

    def set_mask(self, mask: np.ndarray) -> None:
        if mask.shape != self.mask.shape:
            self.prepareGeometryChange()
        self.mask = mask
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self.mask.shape[1], self.mask.shape[0])

    def paint(self, painter: QPainter, option, widget=None) -> None:
        step = level_for(painter.worldTransform().m11())
        h, w = self.mask.shape
        rect = exposed_pixels(option.exposedRect, w, h, step)
        if rect is None:
            return
        x0, y0, x1, y1 = rect
        part = self.mask[y0:y1:step, x0:x1:step]
        if not part.any():
            return
        target = QRectF(x0, y0, part.shape[1] * step, part.shape[0] * step)
        painter.setClipRect(self.boundingRect())  # the last sampled column may reach past the edge
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        painter.drawImage(target, mask_qimage(part, self.color))


def outline_path(mask: np.ndarray) -> QPainterPath:
    """Contours of a mask through pixel centres (cv2.findContours), as one painter path."""
    contours, _ = cv2.findContours(np.ascontiguousarray(mask).view(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    path = QPainterPath()
    for contour in contours:
        pts = contour.reshape(-1, 2).astype(np.float64) + 0.5
        path.addPolygon(QPolygonF([QPointF(x, y) for x, y in pts]))
        path.closeSubpath()
    return path


class MaskOverlay:
    """One label's overlay: the filled mask and an outline path (one of them visible)."""

    def __init__(self, scene: QGraphicsScene, color: QColor, z: float) -> None:
        self.color = QColor(color)
        self.scene = scene
        self.z = z
        self.fill: MaskItem | None = None
        pen = QPen(self.color, 2)
        pen.setCosmetic(True)
        self.outline = QGraphicsPathItem()
        self.outline.setPen(pen)
        self.outline.setZValue(z + 0.5)
        scene.addItem(self.outline)
        self.outline_mode = False
        self.opacity = 0.45
        self.visible = True

    def set_mask(self, mask: np.ndarray | None) -> None:
        if mask is None:
            if self.fill is not None:
                self.scene.removeItem(self.fill)
                self.fill = None
            self.outline.setPath(QPainterPath())
            return
        if self.fill is None:
            self.fill = MaskItem(mask, self.color)
            self.fill.setZValue(self.z)
            self.scene.addItem(self.fill)
        else:
            self.fill.set_mask(mask)
        self._refresh(mask)

    def update_rect(self, mask: np.ndarray, rect: Rect) -> None:
        """The mask changed inside ``rect`` (in place): repaint only that part."""
        if self.fill is None or self.fill.mask is not mask:
            self.set_mask(mask)
            return
        x0, y0, x1, y1 = rect
        self.fill.update(QRectF(x0, y0, x1 - x0, y1 - y0))
        if self.outline_mode:
            self.outline.setPath(outline_path(mask))

    def style(self, opacity: float, outline: bool, visible: bool, mask: np.ndarray | None) -> None:
        changed = outline != self.outline_mode
        self.opacity, self.outline_mode, self.visible = opacity, outline, visible
        if changed and mask is not None:
            self._refresh(mask)
        self._apply_style()

    def _refresh(self, mask: np.ndarray) -> None:
        self.outline.setPath(outline_path(mask) if self.outline_mode else QPainterPath())
        self._apply_style()

    def _apply_style(self) -> None:
        if self.fill is not None:
            self.fill.setOpacity(self.opacity)
            self.fill.setVisible(self.visible and not self.outline_mode)
        self.outline.setVisible(self.visible and self.outline_mode)
