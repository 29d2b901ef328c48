"""How far a proposed lung mask can be trusted: a score in 0..1, higher = more trustworthy.

The review queue sorts by it, so what matters is ranking: images whose masks are wrong must
come first. Candidate signals, each cheap next to the embedding (they re-decode the cached
embedding at low resolution, :meth:`engine.predict.Predictor.predict_low_res`):

* ``iou_pred``: the decoder's own predicted IoU (SAM's IoU head), the lower lung's.
* ``stability``: SAM's stability score, IoU of the masks at logit thresholds +1 and -1, the
  lower lung's: a border the model is unsure about moves a lot between the two.
* ``jitter``: mean IoU between each lung's mask from its box and from the box moved by a few
  percent (fixed draws, so a score replays): a mask that changes with the box is a guess.
* ``box_fill``: IoU of each lung's box with the tight box of its mask, the lower lung's: a
  mask that does not fill the box it was drawn from disagrees with where the box (the head
  or the user) put the lung.
* ``balance``: smaller / larger lung area: one lung a fraction of the other is rare in
  anatomy and common in failures.

Which ranks best was measured with ``benchmarks/zero_click.py`` on a selection set kept apart
from the sets the README reports (300 covidqu_ex/train images + the 152 v7_covid_ieee8023
images, "bad" = zero-click Dice < 0.95): AUROC jitter 0.912, iou_pred 0.908, stability 0.900,
box_fill 0.832, balance 0.478, horizontal-flip agreement (a second embedding) 0.83 on the
report sets; the geometric mean of jitter, stability and iou_pred ranked best (0.931), so it
is the score: three views of "the model is sure of this mask" whose errors differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.predict import Predictor
from engine.propose.jitter import jitter_boxes
from engine.propose.proposer import LungProposal, main_parts, propose_lungs, tight_box

STABILITY_OFFSET = 1.0
FILL_VIEW_PX = 512


@dataclass(frozen=True)
class QualitySignals:
    iou_pred: float
    stability: float
    jitter: float
    box_fill: float
    balance: float

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def stability_score(logits: np.ndarray, offset: float = STABILITY_OFFSET) -> float:
    """IoU of ``logits > offset`` within ``logits > -offset`` (1 when both are empty)."""
    high, low = (logits > offset).sum(), (logits > -offset).sum()
    return float(high / low) if low else 1.0


def quality_signals(predictor: Predictor, proposal: LungProposal, style: str | None = None) -> QualitySignals:
    """The candidate signals of one proposal on the predictor's current image (its jittered
    boxes' logits come with the proposal when ``propose_lungs(..., jitter=True)`` made it)."""
    boxes = proposal.lung_boxes
    logits = proposal.low_res_logits
    stability = min(stability_score(lg) for lg in logits)
    low = proposal.jitter_low_res
    if low is None:  # the proposer did not decode them with the lung boxes
        low, _ = predictor.predict_low_res(jitter_boxes(boxes, predictor.original_size), style)
    base = logits > 0
    ious = [mask_iou(base[i % 2], low[i] > 0) for i in range(len(low))]
    # on a view at most ~512 px across: connected parts of a 2048 px mask cost 16 ms, of this 1
    step = max(1, max(proposal.masks.shape[1:]) // FILL_VIEW_PX)
    fills = []
    for i in range(2):
        tb = tight_box(main_parts(proposal.masks[i, ::step, ::step]))
        fills.append(box_iou(boxes[i], tb * step) if tb is not None else 0.0)
    areas = proposal.masks[:, ::step, ::step].reshape(2, -1).sum(1).astype(np.float64)
    balance = float(areas.min() / areas.max()) if areas.max() > 0 else 0.0
    return QualitySignals(
        iou_pred=float(np.clip(proposal.scores.min(), 0, 1)),
        stability=stability,
        jitter=float(np.mean(ious)),
        box_fill=min(fills),
        balance=balance,
    )


SCORE_SIGNALS = ("jitter", "stability", "iou_pred")


def quality_score(signals: QualitySignals, found: bool = True) -> float:
    """0..1, higher = more trustworthy: the geometric mean of ``SCORE_SIGNALS`` (see the module
    docstring for why these); 0 when no lung was found."""
    if not found:
        return 0.0
    values = np.clip([getattr(signals, name) for name in SCORE_SIGNALS], 0.0, 1.0)
    return float(np.prod(values) ** (1.0 / len(values)))


def propose_scored(predictor: Predictor, style: str | None = None) -> tuple[LungProposal, QualitySignals, float]:
    """Zero-click on the predictor's current image with its quality: (proposal, signals, score).
    The lung boxes and their jittered copies go through the decoder in one pass."""
    proposal = propose_lungs(predictor, style, jitter=True)
    signals = quality_signals(predictor, proposal, style)
    return proposal, signals, quality_score(signals, proposal.found)
