"""How well a quality score ranks bad masks first: AUROC and the share caught in the top k %.

Used to choose and to check the zero-click quality score (:mod:`engine.propose.quality`): a
score means what it says only if the images it doubts are the ones that are wrong.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auroc(doubt: np.ndarray, bad: np.ndarray) -> float:
    """Probability that a random bad image is doubted more than a random good one (ties count
    half); NaN when there are no bad or no good images. ``doubt``: higher = more doubtful."""
    doubt, bad = np.asarray(doubt, np.float64), np.asarray(bad, bool)
    n_bad, n_good = int(bad.sum()), int((~bad).sum())
    if n_bad == 0 or n_good == 0:
        return float("nan")
    ranks = rankdata(doubt)
    return float((ranks[bad].sum() - n_bad * (n_bad + 1) / 2) / (n_bad * n_good))


def caught_in_top(doubt: np.ndarray, bad: np.ndarray, fraction: float = 0.2) -> float:
    """Share of the bad images among the ``fraction`` most doubtful (ties broken by order);
    NaN when there is no bad image."""
    doubt, bad = np.asarray(doubt, np.float64), np.asarray(bad, bool)
    if not bad.any():
        return float("nan")
    k = int(np.ceil(fraction * len(doubt)))
    top = np.argsort(-doubt, kind="stable")[:k]
    return float(bad[top].sum() / bad.sum())
