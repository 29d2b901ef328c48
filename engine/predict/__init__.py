"""Interactive prediction: the stateful :class:`Predictor` (set an image once, then boxes or
points to masks at the original resolution), prompt validation (:mod:`~engine.predict.prompts`)
and the embedding cache keyed by image and model hashes (:mod:`~engine.predict.embedding_cache`).
"""

from engine.predict.corrections import box_then_clicks, click_correction
from engine.predict.embedding_cache import CachedEmbedding, EmbeddingCache, image_hash
from engine.predict.focus import FOCUS_RADIUS, focus_merge, keep_outside_focus
from engine.predict.predictor import EmbeddingInfo, Prediction, Predictor
from engine.predict.prompt_region import restrict_mask, restrict_masks
from engine.predict.prompts import MAX_PROMPTS, point_prompts, validate_boxes, validate_points

__all__ = [
    "FOCUS_RADIUS",
    "box_then_clicks",
    "click_correction",
    "focus_merge",
    "keep_outside_focus",
    "restrict_mask",
    "restrict_masks",
    "CachedEmbedding",
    "EmbeddingCache",
    "EmbeddingInfo",
    "MAX_PROMPTS",
    "Prediction",
    "Predictor",
    "image_hash",
    "validate_boxes",
    "validate_points",
    "point_prompts",
]
