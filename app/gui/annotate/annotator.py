"""Turns canvas gestures into prompts and edits of the current :class:`ImageSession`.

Box drags and clicks become :class:`PredictRequest` objects for the model worker (latest
wins, so the mask follows the mouse); results come back as signals and are drawn. Key A asks
the worker for a zero-click proposal: both lungs' boxes and masks arrive as one undo step, and
the boxes are then edited like drawn ones (:mod:`app.gui.annotate.box_handles`). Brush,
eraser, fill and islands edit the mask directly (cheap numpy on the GUI thread, only the
changed rectangle is repainted). Every completed action is one undo step.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.gui.annotate import mask_ops
from app.gui.annotate.canvas import Canvas
from app.gui.annotate.labels_panel import LABEL_COLORS
from app.gui.annotate.session import OTHER_LUNG, ImageSession, Snapshot
from app.gui.annotate.worker import (
    ModelWorker,
    PredictRequest,
    PredictResult,
    ProposeRequest,
    ProposeResult,
)
from app.gui.annotate.zero_click import LUNG_ROWS, apply_proposal
from app.gui.preferences import MASK_STYLE, OVERWRITE, get_flag, get_preference, set_preference
from engine.sam import styled_name


class Annotator(QObject):
    changed = Signal()  # masks or prompts changed (saved by the next autosave)
    settled = Signal()  # no box, click or proposal waits for its final mask any more
    latency = Signal(float, float)  # box-to-mask seconds, decoder seconds
    message = Signal(str)
    proposal_scored = Signal(float)  # quality of the proposal just drawn (key A)

    def __init__(self, canvas: Canvas, worker: ModelWorker) -> None:
        super().__init__()
        self.canvas = canvas
        self.worker = worker
        self.session: ImageSession | None = None
        self.image_id = 0
        self._label = "lungs"
        self.model: tuple[str, str] | None = None  # (name, hash) of the model in the worker
        # Mask style asked of the model (None: its first); set on every model load from
        # preferred_style(), so the remembered choice applies whenever the model has it.
        self.style: str | None = None
        self.opacity, self.outline, self.masks_visible = 0.45, False, True
        self._ids = itertools.count(1)
        self._pending: dict[str, Snapshot] = {}  # label -> state before the current drag
        self._action: dict[str, str] = {}  # label -> what the pending step is ("box", "point")
        # A style switch re-runs several labels as ONE undo step: state before, labels to go
        self._group: tuple[Snapshot, set[str]] | None = None
        self._stroke: Snapshot | None = None
        self._overwrite = False  # the current stroke takes the other lung's pixels
        self._had_pending = False
        self._proposing: int | None = None  # request id of the proposal in flight
        self.last_request: PredictRequest | None = None
        self.results = 0  # masks drawn from model results
        self.latencies: list[float] = []
        canvas.box_started.connect(self._box_started)
        canvas.box_dragged.connect(self._box_dragged)
        canvas.box_edit_started.connect(self._box_started)
        canvas.box_edited.connect(lambda label, box, final: self._box_dragged(box, final, label))
        canvas.point_clicked.connect(self._point_clicked)
        canvas.brush_stroke.connect(self._brush_stroke)
        worker.predicted.connect(self._predicted)
        worker.predict_failed.connect(self._predict_failed)
        worker.proposed.connect(self._proposed)
        worker.propose_failed.connect(self._propose_failed)

    @property
    def label(self) -> str:
        """The current label: new boxes, clicks and strokes go to it."""
        return self._label

    @label.setter
    def label(self, label: str) -> None:
        self._label = label
        self._update_handles()

    def _update_handles(self) -> None:
        """Which boxes' corners and edges are grabbed: all of them, except while the current
        label is a lung with no box yet; then a press anywhere starts that lung's first box,
        even on the other lung's edge (boxes of the two lungs often overlap there)."""
        prompt = self.session.prompts.get(self._label) if self.session else None
        self.canvas.handle_labels = set() if self._label in OTHER_LUNG and (prompt is None or prompt.box is None) else None

    @property
    def idle(self) -> bool:
        """No box, click or style switch is waiting for its final mask."""
        return not self._pending and self._group is None and self._proposing is None

    # -- session -------------------------------------------------------------------------
    def start(self, session: ImageSession | None, image_id: int) -> None:
        self.session, self.image_id = session, image_id
        self._pending.clear()
        self._action.clear()
        self._group = None
        self._stroke = None
        self._proposing = None
        self.redraw()
        self.settled.emit()

    def redraw(self, labels: list[str] | None = None) -> None:
        """Overlays, boxes and points of ``labels`` (default all) from the session."""
        s = self.session
        names = labels if labels is not None else list(LABEL_COLORS)
        for label in names:
            color = LABEL_COLORS[label]
            mask = s.masks.get(label) if s else None
            self.canvas.set_mask(label, mask, color)
            prompt = s.prompts.get(label) if s else None
            self.canvas.set_box(label, prompt.box if prompt else None, color)
            self.canvas.set_points(label, prompt.points if prompt else [], prompt.point_labels if prompt else [], color)
        self._update_handles()
        self.restyle()

    def restyle(self) -> None:
        masks = self.session.masks if self.session else {}
        self.canvas.style_masks(self.opacity, self.outline, self.masks_visible, masks)

    def _editable(self) -> bool:
        """An image is open (read-only windows may still draw; they just cannot save)."""
        return self.session is not None

    # -- model prompts ---------------------------------------------------------------------
    def _box_started(self, label: str | None = None) -> None:
        """A new box for the current label, or (``label`` given) a handle drag on that
        label's box: the same path either way, so an edited box's mask follows live."""
        label = label or self.label
        if self._editable():
            self._had_pending = label in self._pending  # an earlier box still in flight
            self._pending.setdefault(label, self.session.snapshot([label]))
            self._action[label] = "box"

    def _box_dragged(self, box, final: bool, label: str | None = None) -> None:
        if self.session is None:
            return
        label = label or self.label
        if box is None:  # a click, not a drag: nothing to do
            if final and not self._had_pending:
                self._pending.pop(label, None)
                self._action.pop(label, None)
                self._settle()
            return
        prompt = self.session.prompt(label)
        prompt.box = tuple(float(v) for v in box)
        prompt.points.clear()
        prompt.point_labels.clear()
        self.canvas.set_box(label, prompt.box, LABEL_COLORS[label])
        self.canvas.set_points(label, [], [])
        if final:
            self._update_handles()
        self._send(label, final, mask_input=None)

    def preferred_style(self) -> str | None:
        """The user's last explicit choice (kept across one-style models), else the current."""
        return get_preference(MASK_STYLE) or self.style

    def set_style(self, style: str | None) -> None:
        """Draw later masks in ``style``; every model-drawn label of the image is re-run at
        once, so one image never mixes conventions (one undo step for all of them)."""
        if style == self.style:
            return
        self.style = style
        set_preference(MASK_STYLE, style)
        if not self._editable() or self._group is not None:
            return
        labels = [label for label, prompt in self.session.prompts.items() if not prompt.empty]
        if not labels:
            return
        self._group = (self.session.snapshot(labels), set(labels))
        for label in labels:
            self._pending.pop(label, None)
            self._send(label, True, mask_input=None)
        if self.model is None:
            self._group = None

    def _point_clicked(self, x: float, y: float, positive: bool) -> None:
        if not self._editable():
            return
        label = self.label
        self._pending.setdefault(label, self.session.snapshot([label]))
        self._action[label] = "point"
        prompt = self.session.prompt(label)
        prompt.points.append((float(x), float(y)))
        prompt.point_labels.append(1 if positive else 0)
        self.canvas.set_points(label, prompt.points, prompt.point_labels, LABEL_COLORS[label])
        self._send(label, True, mask_input=self.session.logits.get(label), click=prompt.box is not None)  # boxless: a prompt

    def _send(self, label: str, final: bool, mask_input: np.ndarray | None, click: bool = False) -> None:
        prompt = self.session.prompt(label)
        if self.model is None:
            if final:
                self.message.emit("no model loaded - choose one (Model menu); the box is kept")
                self._finish(label)
            return
        request = PredictRequest(
            request_id=next(self._ids),
            image_id=self.image_id,
            label=label,
            box=prompt.box,
            points=tuple(prompt.points),
            point_labels=tuple(prompt.point_labels),
            mask_input=mask_input,
            final=final, sent=time.perf_counter(), style=self.style, click=click,
        )
        self.last_request = request
        self.worker.submit(request)

    def _predicted(self, result: PredictResult) -> None:
        request = result.request
        if self.session is None or request.image_id != self.image_id:
            return
        click = request.points[-1] if request.click and request.points else None  # a correction edits around itself
        self.session.set_model_mask(request.label, result.mask, result.low_res_logits, self._provenance(request), click)
        self.canvas.set_mask(request.label, self.session.masks[request.label], LABEL_COLORS[request.label])
        self.restyle()
        self.results += 1
        seconds = time.perf_counter() - request.sent  # box sent -> mask on the canvas
        self.latencies.append(seconds)
        del self.latencies[:-1000]
        self.latency.emit(seconds, result.seconds)
        if request.final:
            self._finish(request.label)
        self.changed.emit()

    def _provenance(self, request: PredictRequest | ProposeRequest) -> tuple[str, str] | None:
        """(model name, hash) saved with the mask; a non-default style joins the name, so a
        saved mask says which convention drew it."""
        if self.model is None:
            return None
        name, digest = self.model
        return styled_name(name, request.style), digest

    # -- zero-click ------------------------------------------------------------------------
    def propose(self) -> None:
        """Both lungs from no prompt (key A), computed in the worker (latest wins)."""
        if not self._editable():
            self.message.emit("nothing to propose: no image is open")
            return
        if self.model is None:
            self.message.emit("no model loaded - choose one (Model menu)")
            return
        self._proposing = next(self._ids)
        self.worker.post_propose(ProposeRequest(self._proposing, self.image_id, self.style))

    def _proposed(self, result: ProposeResult) -> None:
        request, proposal = result.request, result.proposal
        if self.session is None or request.image_id != self.image_id or request.request_id != self._proposing:
            return
        self._proposing = None
        if not proposal.masks.any():  # nothing to draw: say so, keep what is there
            self.message.emit(f"{proposal.problem or 'no lung was found'} (quality 0.000)")
            self.proposal_scored.emit(0.0)
            self._settle()
            return
        apply_proposal(self.session, proposal, result.quality, result.signals, self._provenance(request))
        self.redraw(["lungs", *LUNG_ROWS])
        problem = f"; {proposal.problem}" if proposal.problem else ""
        if proposal.source != "box head":  # an official checkpoint, or a damaged head file
            problem += "; found from the whole image (this model has no box head: less exact)"
        self.message.emit(f"proposed both lungs, quality {round(float(result.quality), 4):.3f}{problem} (drag a box's corner or edge to correct)")
        self.proposal_scored.emit(result.quality)
        self.changed.emit()
        self._settle()

    def _propose_failed(self, request: ProposeRequest, message: str) -> None:
        if request.request_id == self._proposing:
            self._proposing = None
            self.message.emit(message)
            self._settle()

    def _predict_failed(self, request: PredictRequest, message: str) -> None:
        self.message.emit(message)
        if request.final:
            self._finish(request.label)

    def _finish(self, label: str) -> None:
        before = self._pending.pop(label, None)
        action = self._action.pop(label, None)
        if self._group is not None and label in self._group[1]:
            group_before, waiting = self._group
            waiting.discard(label)
            if not waiting and self.session is not None:
                self._group = None
                self.session.commit("mask style", group_before, manual=False)
                self.changed.emit()
            self._settle()
            return
        if before is not None and self.session is not None:
            name = action or ("box" if self.session.prompt(label).box else "point")
            self.session.commit(name, before, manual=False)
            self.changed.emit()
        self._settle()

    def _settle(self) -> None:
        if self.idle:
            self.settled.emit()

    # -- hand edits ------------------------------------------------------------------------
    def _brush_stroke(self, start, end, phase: str) -> None:
        if self.session is None:
            return
        label = self.label
        other = OTHER_LUNG.get(label)
        if phase == "start":
            if not self._editable():
                return
            # One pixel, one lung: a stroke either skips the other lung's pixels or, with the
            # "overwrite" preference, takes them (then the other lung is part of the undo step).
            self._overwrite = get_flag(OVERWRITE) and other is not None
            self._stroke = self.session.snapshot([label, other] if self._overwrite else [label])
        if self._stroke is None:
            return
        mask = self.session.mask(label)
        value = self.canvas.tool == "brush"
        a = (math.floor(start[0]), math.floor(start[1]))
        b = (math.floor(end[0]), math.floor(end[1]))
        rect = mask_ops.paint_stroke(mask, a, b, self.canvas.brush_radius, value)
        if rect is not None and value and other in self.session.masks:
            x0, y0, x1, y1 = rect
            theirs = self.session.masks[other]
            if self._overwrite:
                theirs[y0:y1, x0:x1] &= ~mask[y0:y1, x0:x1]
                self.canvas.update_mask_rect(other, theirs, rect, LABEL_COLORS[other])
            else:
                mask[y0:y1, x0:x1] &= ~theirs[y0:y1, x0:x1]
        self.canvas.update_mask_rect(label, mask, rect, LABEL_COLORS[label])
        if phase == "end":
            self.restyle()
            before, self._stroke = self._stroke, None
            self.session.commit("eraser" if not value else "brush", before, manual=True)
            self.changed.emit()

    def apply_op(self, name: str) -> None:
        """'fill' (holes) or 'islands' on the current label, as one undo step; the status bar
        says what changed ("filled 3 holes (120 px)") or that nothing did."""
        if not self._editable() or self.label not in self.session.masks:
            self.message.emit(f"nothing to {name}: the {self.label} label has no mask")
            return
        label = self.label
        before = self.session.snapshot([label])
        mask = self.session.masks[label]
        result = mask_ops.fill_holes(mask) if name == "fill" else mask_ops.remove_small_islands(mask)
        other = OTHER_LUNG.get(label)
        if other in self.session.masks:  # a filled hole never takes the other lung's pixels
            result &= ~self.session.masks[other] | mask
        changed = result ^ mask
        regions, pixels = mask_ops.count_regions(changed), int(changed.sum())
        self.session.masks[label] = np.ascontiguousarray(result)
        if self.session.commit(name, before, manual=True):
            self.redraw([label])
            self.changed.emit()
        if name == "fill":
            text = f"filled {plural(regions, 'hole')} ({pixels} px)" if pixels else "nothing to fill: no holes"
        else:
            text = f"removed {plural(regions, 'island')} ({pixels} px)" if pixels else "nothing to remove: no small islands"
        self.message.emit(text)

    def clear_label(self) -> None:
        if not self._editable():
            return
        label = self.label
        before = self.session.snapshot([label])
        self.session.clear_label(label)
        if self.session.commit("clear", before, manual=True):
            self.redraw([label])
            self.changed.emit()

    def undo(self) -> bool:
        return self._history(self.session.undo if self.session else None, "undo")

    def redo(self) -> bool:
        return self._history(self.session.redo if self.session else None, "redo")

    def _history(self, step, what: str) -> bool:
        if step is None:
            return False
        entry = step()
        if entry is None:
            self.message.emit(f"nothing to {what}")
            return False
        self._pending.clear()
        self._action.clear()
        self.redraw(sorted({p.label for p in entry.patches} | set(entry.prompts_before)))
        self.message.emit(f"{what}: {entry.name}")
        self.changed.emit()
        return True


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")
