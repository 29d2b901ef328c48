"""Undo/redo of mask edits with bounded memory.

An entry keeps only the rectangle that changed, bit-packed, before and after, plus the prompt
state on both sides, so a brush dab on a 4k x 5k mask costs a few hundred bytes, not 20 MB.
The stack holds at most ``max_steps`` entries (default 200, >= 50 by contract) and
``max_bytes`` of packed data (default 64 MiB); the oldest entries go first. Qt-free.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.gui.annotate.mask_ops import Rect, changed_rect


@dataclass(frozen=True)
class Patch:
    """One label's change: ``before``/``after`` are packbits of the ``rect`` crop.

    ``existed_before`` is False when the label had no mask before the edit (undo removes it).
    """

    label: str
    rect: Rect
    before: bytes
    after: bytes
    existed_before: bool
    shape: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return len(self.before) + len(self.after)


@dataclass(frozen=True)
class Entry:
    """One user action (a box, a click, a brush stroke, fill...), maybe touching several labels."""

    name: str
    patches: tuple[Patch, ...]
    prompts_before: dict[str, Any] = field(default_factory=dict)
    prompts_after: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.patches)


def make_patch(label: str, before: np.ndarray | None, after: np.ndarray) -> Patch | None:
    """The difference between two masks of one label (None when equal)."""
    existed = before is not None
    if before is None:
        before = np.zeros_like(after)
    rect = changed_rect(before, after)
    if rect is None:
        if existed:
            return None
        rect = (0, 0, 1, 1)  # a new, still empty mask: record it so undo removes the label
    x0, y0, x1, y1 = rect
    return Patch(
        label,
        rect,
        np.packbits(before[y0:y1, x0:x1]).tobytes(),
        np.packbits(after[y0:y1, x0:x1]).tobytes(),
        existed,
        after.shape,
    )


def _unpack(data: bytes, rect: Rect) -> np.ndarray:
    x0, y0, x1, y1 = rect
    count = (x1 - x0) * (y1 - y0)
    bits = np.unpackbits(np.frombuffer(data, np.uint8), count=count)
    return bits.reshape(y1 - y0, x1 - x0).astype(bool)


class EditHistory:
    """Linear undo/redo stack; a new entry after undo discards the redo branch."""

    def __init__(self, max_steps: int = 200, max_bytes: int = 64 << 20) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        self.max_steps = max_steps
        self.max_bytes = max_bytes
        self._undo: deque[Entry] = deque()
        self._redo: list[Entry] = []
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._undo)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def nbytes(self) -> int:
        return self._bytes + sum(e.nbytes for e in self._redo)

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._bytes = 0

    def record(
        self,
        name: str,
        before: dict[str, np.ndarray | None],
        after: dict[str, np.ndarray],
        prompts_before: dict[str, Any] | None = None,
        prompts_after: dict[str, Any] | None = None,
    ) -> bool:
        """Push the change from ``before`` to ``after`` (per label); False when nothing changed."""
        patches = tuple(
            p for label, mask in after.items() if (p := make_patch(label, before.get(label), mask))
        )
        if not patches and prompts_before == prompts_after:
            return False
        entry = Entry(name, patches, dict(prompts_before or {}), dict(prompts_after or {}))
        self._redo.clear()
        self._undo.append(entry)
        self._bytes += entry.nbytes
        while len(self._undo) > 1 and (
            len(self._undo) > self.max_steps or self._bytes > self.max_bytes
        ):
            self._bytes -= self._undo.popleft().nbytes
        return True

    def undo(self, masks: dict[str, np.ndarray]) -> Entry | None:
        """Revert the last entry on ``masks`` (in place); returns it, or None when empty."""
        if not self._undo:
            return None
        entry = self._undo.pop()
        self._bytes -= entry.nbytes
        for patch in entry.patches:
            if not patch.existed_before:
                masks.pop(patch.label, None)
                continue
            mask = masks.setdefault(patch.label, np.zeros(patch.shape, bool))
            x0, y0, x1, y1 = patch.rect
            mask[y0:y1, x0:x1] = _unpack(patch.before, patch.rect)
        self._redo.append(entry)
        return entry

    def redo(self, masks: dict[str, np.ndarray]) -> Entry | None:
        """Re-apply the last undone entry on ``masks`` (in place)."""
        if not self._redo:
            return None
        entry = self._redo.pop()
        for patch in entry.patches:
            mask = masks.setdefault(patch.label, np.zeros(patch.shape, bool))
            x0, y0, x1, y1 = patch.rect
            mask[y0:y1, x0:x1] = _unpack(patch.after, patch.rect)
        self._undo.append(entry)
        self._bytes += entry.nbytes
        return entry
