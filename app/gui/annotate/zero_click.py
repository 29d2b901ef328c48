"""A zero-click proposal as the window keeps it: two lung labels, their boxes, the score.

Why its own module: the interactive proposal (key A) and the folder job store the same thing
the same way, so an image pre-segmented in the background opens exactly like one proposed by
hand: the patient's right lung (the image's LEFT, row 0 of
:class:`engine.propose.LungProposal`) and left lung as model masks with their boxes as the
labels' prompts (editable on the canvas), and ``prompts["auto"]`` holding the proposed boxes,
the quality (0..1, higher = more trustworthy) and its signals, which the review queue reads
back (:meth:`engine.project.ProjectStore.model_qualities`). Qt-free.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.gui.annotate.session import ImageSession
from engine.project import AUTO_KEY
from engine.propose import LungProposal, QualitySignals

LUNG_ROWS = ("right lung", "left lung")
"""Store label of each proposal row: row 0 = image left = the PATIENT's right lung."""


def lung_masks(proposal: LungProposal) -> dict[str, np.ndarray]:
    return {label: np.ascontiguousarray(proposal.masks[row], dtype=bool) for row, label in enumerate(LUNG_ROWS)}


def lung_boxes(proposal: LungProposal) -> dict[str, tuple[float, float, float, float]]:
    """Each lung's proposed box, rounded as the session stores boxes (3 decimals), so an undo,
    a restart and the saved proposal all hold the same numbers."""
    boxes = np.round(np.asarray(proposal.lung_boxes, dtype=np.float64), 3)
    return {label: (float(b[0]), float(b[1]), float(b[2]), float(b[3])) for label, b in zip(LUNG_ROWS, boxes, strict=True)}


def auto_record(proposal: LungProposal, quality: float, signals: QualitySignals | None) -> dict[str, Any]:
    """What ``prompts["auto"]`` holds: boxes per label (original pixels), quality, signals."""
    return {
        "boxes": {label: [round(v, 3) for v in box] for label, box in lung_boxes(proposal).items()},
        "quality": round(float(quality), 4),
        "signals": {k: round(float(v), 4) for k, v in signals.as_dict().items()} if signals else {},
        "found": bool(proposal.found),
        "problem": proposal.problem,
        "source": proposal.source,
    }


def saved_prompts(proposal: LungProposal, quality: float, signals: QualitySignals | None, reason: str) -> dict[str, Any]:
    """The prompts of a saved proposal: the labels' boxes (restored as editable boxes when the
    image opens) and the auto record."""
    labels = {label: {"box": [round(v, 3) for v in box], "points": [], "point_labels": []}
              for label, box in lung_boxes(proposal).items()}
    return {"labels": labels, AUTO_KEY: auto_record(proposal, quality, signals), "reason": reason}


def apply_proposal(session: ImageSession, proposal: LungProposal, quality: float, signals: QualitySignals | None,
                   model: tuple[str, str] | None) -> bool:
    """Draw ``proposal`` into ``session`` as ONE undo step (False when it changed nothing): the
    two lungs' masks and boxes replace theirs, a both-lungs mask is cleared (undoably)."""
    before = session.snapshot(["lungs", *LUNG_ROWS])
    if "lungs" in session.masks:
        session.clear_label("lungs")
    for label in LUNG_ROWS:
        session.masks.pop(label, None)  # new masks, not clipped by the old other lung
    boxes = lung_boxes(proposal)
    for row, (label, mask) in enumerate(lung_masks(proposal).items()):
        prompt = session.prompt(label)
        prompt.box, prompt.points, prompt.point_labels = boxes[label], [], []
        session.set_model_mask(label, mask, proposal.low_res_logits[row][None, None], model)
    session.auto = auto_record(proposal, quality, signals)
    return session.commit("propose", before, manual=False)


def current_auto(session: ImageSession) -> dict[str, Any] | None:
    """The session's zero-click record while it still describes what is drawn: both lungs'
    boxes as proposed. Once a box is edited (or the proposal undone) the score no longer
    belongs to the masks, so it is not saved with them."""
    auto = session.auto
    boxes = auto.get("boxes") if auto else None
    if not isinstance(boxes, dict):
        return None
    for label in LUNG_ROWS:
        prompt = session.prompts.get(label)
        proposed = boxes.get(label)
        if prompt is None or prompt.box is None or proposed is None:
            return None
        if not np.allclose(prompt.box, proposed, atol=0.01):
            return None
    return auto
