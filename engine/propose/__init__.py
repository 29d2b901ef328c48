"""Zero-click segmentation: lungs proposed with no prompt (:mod:`~engine.propose.proposer`), how
far each proposed mask can be trusted (:mod:`~engine.propose.quality`) and many images
pipelined (:mod:`~engine.propose.batch`)."""

from engine.propose.batch import AutoResult, default_workers, propose_many, segment_one
from engine.propose.jitter import jitter_boxes
from engine.propose.proposer import LungProposal, main_parts, propose_lungs, split_lungs, tight_box
from engine.propose.quality import QualitySignals, propose_scored, quality_score, quality_signals

__all__ = [
    "AutoResult",
    "LungProposal",
    "QualitySignals",
    "default_workers",
    "jitter_boxes",
    "main_parts",
    "propose_lungs",
    "propose_many",
    "propose_scored",
    "quality_score",
    "quality_signals",
    "segment_one",
    "split_lungs",
    "tight_box",
]
