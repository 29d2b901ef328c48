"""Editable boxes: which corner or edge of a box the mouse is on, and the box it drags to.

Why its own module: the hit test must work in SCREEN pixels (a handle is a few pixels wide
at any zoom, as in CVAT or LabelMe), while boxes live in image pixels; keeping that geometry
Qt-light and separate lets the canvas stay a thin gesture forwarder and the rules be tested
without a window. Handles: ``"tl" "tr" "bl" "br"`` (corners, checked first) and ``"l" "r" "t"
"b"`` (edges).
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsRectItem

Box = tuple[float, float, float, float]
TOLERANCE_PX = 6.0
"""How near (screen pixels) the mouse must be to an edge or corner to grab it."""
MIN_SIDE = 2.0
"""Smallest side (image pixels) a resized box keeps, so a drag past the opposite edge flips
no box into nothing."""

CURSORS = {
    "tl": Qt.CursorShape.SizeFDiagCursor,
    "br": Qt.CursorShape.SizeFDiagCursor,
    "tr": Qt.CursorShape.SizeBDiagCursor,
    "bl": Qt.CursorShape.SizeBDiagCursor,
    "l": Qt.CursorShape.SizeHorCursor,
    "r": Qt.CursorShape.SizeHorCursor,
    "t": Qt.CursorShape.SizeVerCursor,
    "b": Qt.CursorShape.SizeVerCursor,
}


def hit_handle(screen_box: Box, x: float, y: float, tolerance: float = TOLERANCE_PX) -> tuple[str, float] | None:
    """(handle, distance in screen pixels) of the mouse at (x, y) on ``screen_box`` (the box's
    corners mapped to the viewport), or None when it is on no handle."""
    x0, y0, x1, y1 = screen_box
    dl, dr, dt, db = abs(x - x0), abs(x - x1), abs(y - y0), abs(y - y1)
    within_x = x0 - tolerance <= x <= x1 + tolerance
    within_y = y0 - tolerance <= y <= y1 + tolerance
    corners = {"tl": (dl, dt), "tr": (dr, dt), "bl": (dl, db), "br": (dr, db)}
    best = min(corners.items(), key=lambda kv: max(kv[1]))
    if max(best[1]) <= tolerance:
        return best[0], float(max(best[1]))
    edges = []
    if within_y:
        edges += [("l", dl), ("r", dr)]
    if within_x:
        edges += [("t", dt), ("b", db)]
    near = [(name, d) for name, d in edges if d <= tolerance]
    if not near:
        return None
    name, distance = min(near, key=lambda kv: kv[1])
    return name, float(distance)


def drag_handle(box: Box, handle: str, x: float, y: float, size: tuple[int, int]) -> Box:
    """``box`` with ``handle`` moved to image point (x, y), clipped to the image (``size``:
    H, W); the opposite side stays where it was, and the box keeps :data:`MIN_SIDE`."""
    h, w = size
    x = min(max(x, 0.0), float(w))
    y = min(max(y, 0.0), float(h))
    x0, y0, x1, y1 = box
    if "l" in handle:
        x0 = min(x, x1 - MIN_SIDE)
    if "r" in handle:
        x1 = max(x, x0 + MIN_SIDE)
    if "t" in handle:
        y0 = min(y, y1 - MIN_SIDE)
    if "b" in handle:
        y1 = max(y, y0 + MIN_SIDE)
    return (max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h)))


class BoxItem(QGraphicsRectItem):
    """A label's box on the canvas: a dashed outline with a small square on each corner, the
    same size on screen at any zoom, so the box looks as editable as it is."""

    HANDLE_PX = 7.0

    def __init__(self, color: QColor) -> None:
        super().__init__()
        pen = QPen(color, 1.5, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self.setPen(pen)
        self.setZValue(50)
        self.corners: list[QGraphicsRectItem] = []
        for _ in range(4):
            corner = QGraphicsRectItem(-self.HANDLE_PX / 2, -self.HANDLE_PX / 2, self.HANDLE_PX, self.HANDLE_PX, self)
            corner.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            corner.setBrush(QBrush(QColor(255, 255, 255)))
            edge = QPen(color, 1.5)
            edge.setCosmetic(True)
            corner.setPen(edge)
            self.corners.append(corner)

    def set_box(self, box: Box) -> None:
        x0, y0, x1, y1 = box
        self.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        for corner, (x, y) in zip(self.corners, ((x0, y0), (x1, y0), (x0, y1), (x1, y1)), strict=True):
            corner.setPos(QPointF(x, y))
