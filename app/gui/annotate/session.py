"""What the user is doing to the current image: masks per label, prompts, history (Qt-free).

Masks are bool HxW arrays in original-image pixels, one per label (``engine.project.store``
labels: 'right lung' and 'left lung' are the PATIENT's sides, 'lungs' is both). Model output
and hand edits both go through here, so the annotation kind is explicit when it is saved:
pure model output is "model"; any hand edit (brush, eraser, fill, islands) or an explicit
save makes it "corrected" (clinician final), as in MONAI Label's tags.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.gui.annotate.edit_history import EditHistory, Entry
from engine.predict import keep_outside_focus

Box = tuple[float, float, float, float]
OTHER_LUNG = {"right lung": "left lung", "left lung": "right lung"}


@dataclass
class LabelPrompt:
    """The prompts that made a label's model mask: one box and any number of clicks."""

    box: Box | None = None
    points: list[tuple[float, float]] = field(default_factory=list)
    point_labels: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 3) for v in self.box] if self.box is not None else None,
            "points": [[round(float(x), 3), round(float(y), 3)] for x, y in self.points],
            "point_labels": [int(v) for v in self.point_labels],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LabelPrompt:
        data = data or {}
        box = data.get("box")
        return cls(
            box=tuple(float(v) for v in box) if box else None,
            points=[(float(x), float(y)) for x, y in data.get("points", [])],
            point_labels=[int(v) for v in data.get("point_labels", [])],
        )

    @property
    def empty(self) -> bool:
        return self.box is None and not self.points


@dataclass
class Snapshot:
    masks: dict[str, np.ndarray | None]
    prompts: dict[str, dict[str, Any]]


class ImageSession:
    """Masks, prompts, low-res logits and undo history of one open image."""

    def __init__(self, rel_path: str, shape: tuple[int, int], history: EditHistory | None = None) -> None:
        self.rel_path = rel_path
        self.shape = (int(shape[0]), int(shape[1]))
        self.masks: dict[str, np.ndarray] = {}
        self.prompts: dict[str, LabelPrompt] = {}
        self.logits: dict[str, np.ndarray] = {}
        self.history = history if history is not None else EditHistory()
        self.dirty = False  # changed since the last save
        self.edited = False  # contains hand corrections (saved as "corrected")
        self.saved_version: int | None = None
        self.saved_kind: str | None = None
        self.model_name: str | None = None
        self.model_hash: str | None = None
        self.auto: dict[str, Any] | None = None  # the zero-click record (boxes, quality), saved as prompts["auto"]

    # -- prompts ---------------------------------------------------------------------------
    def prompt(self, label: str) -> LabelPrompt:
        return self.prompts.setdefault(label, LabelPrompt())

    def prompt_state(self) -> dict[str, dict[str, Any]]:
        return {label: p.to_dict() for label, p in self.prompts.items() if not p.empty}

    def restore(self, masks: dict[str, np.ndarray], prompts: dict[str, Any] | None, corrected: bool, version: int | None) -> None:
        """State from a saved annotation (no history: reopening starts a fresh undo stack)."""
        self.masks = {label: np.ascontiguousarray(m, dtype=bool) for label, m in masks.items()}
        labels = (prompts or {}).get("labels", prompts or {})
        self.prompts = {
            label: LabelPrompt.from_dict(value)
            for label, value in labels.items()
            if isinstance(value, dict)
        }
        auto = (prompts or {}).get("auto")
        self.auto = auto if isinstance(auto, dict) else None
        self.logits.clear()
        self.history.clear()
        self.edited = corrected
        self.dirty = False
        self.saved_version = version
        self.saved_kind = "corrected" if corrected else ("model" if version is not None else None)

    # -- edits -----------------------------------------------------------------------------
    def snapshot(self, labels: list[str] | tuple[str, ...]) -> Snapshot:
        return Snapshot(
            {label: (self.masks[label].copy() if label in self.masks else None) for label in labels},
            {label: self.prompt(label).to_dict() for label in labels},
        )

    def mask(self, label: str) -> np.ndarray:
        """The label's mask, created empty on first use (edited in place by the brush)."""
        if label not in self.masks:
            self.masks[label] = np.zeros(self.shape, dtype=bool)
        return self.masks[label]

    def set_model_mask(self, label: str, mask: np.ndarray, logits: np.ndarray | None, model: tuple[str, str] | None,
                       click: tuple[float, float] | None = None) -> None:
        """A model mask for ``label``; one pixel belongs to one lung, so a lung's model mask
        never takes pixels the other lung already has. ``click``: a corrective click's
        result changes the label's mask only around the click (:mod:`engine.predict.focus`)."""
        if mask.shape != self.shape:
            raise ValueError(f"mask shape {mask.shape} != image shape {self.shape}")
        mask = np.ascontiguousarray(mask, dtype=bool)
        if click is not None and label in self.masks:
            mask = keep_outside_focus(self.masks[label], mask, click)
        other = OTHER_LUNG.get(label)
        if other is not None and other in self.masks:
            mask = mask & ~self.masks[other]
        self.masks[label] = mask
        if logits is not None:
            self.logits[label] = logits
        if model is not None:
            self.model_name, self.model_hash = model
        self.dirty = True

    def commit(self, name: str, before: Snapshot, manual: bool) -> bool:
        """Record the change since ``before`` as one undo step; False when nothing changed."""
        labels = list(before.masks)
        after = {label: self.masks[label] for label in labels if label in self.masks}
        changed = self.history.record(
            name,
            before.masks,
            after,
            before.prompts,
            {label: self.prompt(label).to_dict() for label in labels},
        )
        if changed:
            self.dirty = True
            self.edited = self.edited or manual
        return changed

    def clear_label(self, label: str) -> None:
        """Empty the label's mask (kept as an empty array so the clearing can be undone)."""
        if label in self.masks:
            self.masks[label] = np.zeros(self.shape, dtype=bool)
        self.prompts.pop(label, None)
        self.logits.pop(label, None)

    def undo(self) -> Entry | None:
        return self._apply(self.history.undo(self.masks), before=True)

    def redo(self) -> Entry | None:
        return self._apply(self.history.redo(self.masks), before=False)

    def _apply(self, entry: Entry | None, before: bool) -> Entry | None:
        if entry is None:
            return None
        prompts = entry.prompts_before if before else entry.prompts_after
        for label, state in prompts.items():
            self.prompts[label] = LabelPrompt.from_dict(copy.deepcopy(state))
        for patch in entry.patches:
            self.logits.pop(patch.label, None)  # logits no longer match the mask
        self.dirty = True
        return entry

    def labels_with_masks(self) -> list[str]:
        return [label for label, mask in self.masks.items() if mask is not None]
