"""What the review queue reads from the store: each image's newest model mask's quality.

Why it exists: the zero-click pass saves its quality score (0..1, higher = more trustworthy)
inside the model annotation's prompts (``prompts["auto"]["quality"]``), so the score survives
restarts with no schema change; the GUI needs it for every image at once, to sort the image
list by it, without loading a single mask. :class:`ProjectStore` inherits
:class:`ReviewMixin`.
"""

from __future__ import annotations

from engine.project.db import ProjectDB

AUTO_KEY = "auto"
"""Key of the zero-click record in a model annotation's prompts: boxes, quality, signals."""


class ReviewMixin(ProjectDB):
    """Read-only queries behind the review queue."""

    def model_qualities(self) -> dict[str, float]:
        """rel_path -> quality of the image's newest ``model`` annotation, for every image
        whose newest model annotation carries one (an older one without a score, or a box
        drawn by hand, has none). One query; no mask file is read."""
        rows = self._query(
            "SELECT i.rel_path, json_extract(a.prompts_json, '$.auto.quality') FROM images i"
            " JOIN annotations a ON a.image_id = i.id WHERE a.version = (SELECT MAX(version)"
            " FROM annotations WHERE image_id = i.id AND kind = 'model')"
        )
        return {rel: float(q) for rel, q in rows if isinstance(q, int | float)}
