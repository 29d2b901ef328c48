"""Evaluate a model on an image/mask folder at each image's original resolution.

Prompts come from the ground truth, tight and without jitter, so the numbers measure the
model and not the prompt sampler:

* ``"union"``: one box around both lungs; the predicted mask is scored against the union GT.
* ``"per-lung"``: one box per lung (both in one ``predict`` call); the union of the two
  predicted masks is scored against the union GT, and each lung's prediction against its
  own GT lung (``dice_image_left``, ``dice_image_right``, their mean ``dice_lung_mean``;
  "image left" is the patient's right lung, see :mod:`trainer.data.lung_labels`).
* ``"auto"``: no prompt from the ground truth at all: the zero-click proposal
  (:func:`engine.propose.propose_lungs`), scored like ``per-lung``, plus its ``quality``
  score and ``lungs_swapped`` (1 when each proposed lung matches the other GT lung better).

The predictor maps masks back to the original image size, so metrics (and HD95 in mm for
images that carry a pixel spacing) are computed where a clinician would look. Pairs that
cannot be used (unreadable file, image/mask size mismatch, empty mask) are skipped with a
warning naming the file, and counted.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import LungSamError
from engine.imaging import LoadedImage, load_image
from engine.models import LoadedModel, load_model
from engine.predict import EmbeddingCache, Predictor
from engine.propose import propose_scored
from engine.sam import mask_styles, style_index
from trainer.data import (
    IMAGE_LEFT,
    IMAGE_RIGHT,
    Pair,
    find_pairs,
    labels_from_masks,
    read_mask,
    tight_box,
)
from trainer.evaluation.metrics import dice, mask_metrics

log = logging.getLogger(__name__)

PROMPTS = ("union", "per-lung", "auto")
METRICS = ("dice", "iou", "precision", "recall", "hd95")
LUNG_METRICS = ("dice_image_left", "dice_image_right", "dice_lung_mean", "quality", "lungs_swapped")
PHASES = ("load", "embed", "decode", "metrics")
_COLUMNS = ("name", "height", "width", *METRICS, "hd95_unit", *LUNG_METRICS, "seconds")
Progress = Callable[[int, int], None]


# ----------------------------------------------------------------------------- result


@dataclass
class EvalResult:
    """Per-image ``rows`` (one dict each, see ``_COLUMNS``) and the ``summary`` of a run.

    ``summary``: ``metrics`` (per metric: mean, std, median, n, n_nan; NaN excluded from
    the statistics and counted in ``n_nan``), ``n``, ``n_skipped``, ``skipped`` (name and
    reason), ``prompt``, ``model`` (name, hash, source, int8), ``data_dir``, ``hd95_unit``
    (px, mm or mixed) and ``timing`` (seconds per phase, summed over images).
    """

    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    def metric_names(self) -> list[str]:
        """The numeric per-image metrics present in the rows, in table order."""
        keys = set().union(*(r.keys() for r in self.rows)) if self.rows else set()
        return [m for m in (*METRICS, *LUNG_METRICS) if m in keys]

    def to_json(self, path: str | Path) -> Path:
        """Strict JSON (NaN written as null) with ``summary`` and ``rows``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"summary": self.summary, "rows": self.rows}
        path.write_text(json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> EvalResult:
        """Read what :meth:`to_json` wrote (null metrics come back as NaN)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = [
                {k: (math.nan if v is None and k in _NUMERIC else v) for k, v in r.items()}
                for r in data["rows"]
            ]
            return cls(rows, data.get("summary", {}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LungSamError(f"{path}: not an evaluation result file ({exc})") from exc

    def to_csv(self, path: str | Path) -> Path:
        """One line per image; NaN as ``nan`` (``float()`` reads it back)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        present = set().union(*(r.keys() for r in self.rows)) if self.rows else set(_COLUMNS)
        columns = [c for c in _COLUMNS if c in present]
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: _csv_value(row.get(k)) for k in columns})
        return path

    def summary_table(self) -> str:
        """Plain-text table: mean, std, median and n per metric, then counts."""
        lines = [f"{'metric':<18}{'mean':>10}{'std':>10}{'median':>10}{'n':>6}{'nan':>5}"]
        for name, stats in self.summary.get("metrics", {}).items():
            label = f"{name} [{self.summary.get('hd95_unit', 'px')}]" if name == "hd95" else name
            lines.append(
                f"{label:<18}{_fmt(stats['mean']):>10}{_fmt(stats['std']):>10}"
                f"{_fmt(stats['median']):>10}{stats['n']:>6}{stats['n_nan']:>5}"
            )
        s = self.summary
        lines.append(
            f"images: {s.get('n', len(self.rows))}, skipped: {s.get('n_skipped', 0)}, "
            f"prompt: {s.get('prompt', '?')}, model: {s.get('model', {}).get('name', '?')}"
        )
        return "\n".join(lines)


_NUMERIC = frozenset((*METRICS, *LUNG_METRICS, "seconds"))


def _fmt(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.4f}"


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return value


def json_safe(value: Any) -> Any:
    """Plain JSON types for ``json.dumps(allow_nan=False)``: NaN/inf become null."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def describe(values: Iterable[float]) -> dict[str, Any]:
    """mean, std (sample, ddof=1; 0 for one value), median over the finite values; n, n_nan."""
    arr = np.asarray([float(v) for v in values], dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    n = int(finite.size)
    if n == 0:
        return {"mean": None, "std": None, "median": None, "n": 0, "n_nan": int(arr.size)}
    return {
        "mean": float(finite.mean()),
        "std": float(finite.std(ddof=1)) if n > 1 else 0.0,
        "median": float(np.median(finite)),
        "n": n,
        "n_nan": int(arr.size - n),
    }


# ----------------------------------------------------------------------------- ground truth


@dataclass
class GroundTruth:
    """One image at original size; ``union``, ``left``, ``right`` bool HxW (patient's lungs,
    None when the data set has no per-lung masks)."""

    image: LoadedImage
    union: np.ndarray
    left: np.ndarray | None = None
    right: np.ndarray | None = None
    _labels: np.ndarray | None = field(default=None, repr=False)

    @property
    def labels(self) -> np.ndarray:
        """uint8 HxW: 0, 1 (lung on the image's left), 2 (image's right); computed on first use
        (splitting a 1024 px mask costs ~0.1 s that the union prompt does not need)."""
        if self._labels is None:
            self._labels = labels_from_masks(self.union.astype(np.uint8), self.left, self.right)
        return self._labels


def load_ground_truth(pair: Pair) -> GroundTruth:
    """Image and masks of one pair at original size; any problem is a :class:`LungSamError`.

    A pair drawn per lung only (no both-lungs mask, as in annotation projects) gets the union
    of its lungs, like :func:`trainer.data.datasets.load_pair` does for training.
    """
    image = load_image(pair.image)
    shape = image.pixels.shape[:2]
    union = read_mask(pair.mask, shape, pair.image.name) if pair.mask is not None else None
    if pair.mask is not None and union is not None and not union.any():
        raise LungSamError(f"{pair.mask.name}: mask is empty")
    left = read_mask(pair.mask_left, shape, pair.image.name) if pair.mask_left else None
    right = read_mask(pair.mask_right, shape, pair.image.name) if pair.mask_right else None
    if union is None:
        lungs = [m for m in (left, right) if m is not None]
        if not lungs or not np.any(lungs):
            raise LungSamError(f"{pair.name}: no lung in the corrected mask")
        union = np.logical_or.reduce(lungs)
    if left is None or right is None:
        left = right = None  # one per-lung mask alone cannot be trusted to split the other
    return GroundTruth(image, union, left, right)


def prompt_boxes(gt: GroundTruth, prompt: str) -> tuple[np.ndarray, list[int]]:
    """Boxes (B x 4, x0 y0 x1 y1, exclusive x1/y1, original pixels) and the lung label of each.

    Label 0 stands for the union box. A lung missing from the label map gets no box.
    """
    if prompt == "union":
        box = tight_box(gt.union)
        if box is None:
            raise LungSamError("the ground-truth mask is empty")
        return box[None], [0]
    boxes, kinds = [], []
    for label in (IMAGE_LEFT, IMAGE_RIGHT):
        box = tight_box(gt.labels == label)
        if box is not None:
            boxes.append(box)
            kinds.append(label)
    return np.asarray(boxes), kinds


# ----------------------------------------------------------------------------- evaluation


def lungs_swapped(masks: np.ndarray, labels: np.ndarray) -> bool:
    """True when the image-left / image-right masks (2 x H x W) each match the other GT lung of
    ``labels`` (0, IMAGE_LEFT, IMAGE_RIGHT) better than their own."""
    crossed = dice(masks[0], labels == IMAGE_RIGHT) + dice(masks[1], labels == IMAGE_LEFT)
    straight = dice(masks[0], labels == IMAGE_LEFT) + dice(masks[1], labels == IMAGE_RIGHT)
    return bool(crossed > straight)


def evaluate_image(
    predictor: Any, gt: GroundTruth, prompt: str, timing: dict[str, float], style: str | None = None
) -> dict[str, Any]:
    """Scores of one image (a result row without ``name`` and ``seconds``); adds to ``timing``."""
    start = time.perf_counter()
    if prompt == "auto":
        kinds = [IMAGE_LEFT, IMAGE_RIGHT]
    else:
        boxes, kinds = prompt_boxes(gt, prompt)  # per-lung: splits the GT (counted as loading)
    prompted = time.perf_counter()
    predictor.set_image(gt.image.pixels)
    embedded = time.perf_counter()
    quality = math.nan
    if prompt == "auto":
        proposal, _, quality = propose_scored(predictor, style)
        masks = proposal.masks
    else:
        masks = np.asarray(predictor.predict(boxes=boxes, style=style).masks)[:, 0]
    decoded = time.perf_counter()
    scores = mask_metrics(np.asarray(masks.any(axis=0)), gt.union, gt.image.pixel_spacing)
    row: dict[str, Any] = {"height": gt.union.shape[0], "width": gt.union.shape[1]}
    row.update(scores.as_dict())
    if prompt in ("per-lung", "auto"):
        per_lung = {IMAGE_LEFT: math.nan, IMAGE_RIGHT: math.nan}
        for mask, label in zip(masks, kinds, strict=True):
            per_lung[label] = dice(mask, gt.labels == label)
        row["dice_image_left"] = per_lung[IMAGE_LEFT]
        row["dice_image_right"] = per_lung[IMAGE_RIGHT]
        found = [v for v in per_lung.values() if not math.isnan(v)]
        row["dice_lung_mean"] = float(np.mean(found)) if found else math.nan
    if prompt == "auto":
        row["quality"] = quality
        row["lungs_swapped"] = float(lungs_swapped(masks, gt.labels))
    done = time.perf_counter()
    timing["load"] += prompted - start
    timing["embed"] += embedded - prompted
    timing["decode"] += decoded - embedded
    timing["metrics"] += done - decoded
    return row


def summarize(rows: list[dict[str, Any]], metrics: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per metric :func:`describe` over the rows that have it."""
    return {m: describe(r[m] for r in rows if m in r) for m in metrics}


def evaluate_model(
    model: LoadedModel | str | Path | None,
    data_dir: str | Path,
    prompt: str = "union",
    exclude: Iterable[str] = (),
    device: str = "auto",
    limit: int | None = None,
    progress: Progress | None = None,
    style: str | None = None,
) -> EvalResult:
    """Score ``model`` (loaded, or anything :func:`engine.models.load_model` accepts) on
    ``data_dir/images`` + ``data_dir/masks`` (+ ``masks_left``/``masks_right``).

    ``exclude``: image names (stems or file names) to leave out; ``limit``: the first N pairs
    only; ``progress(done, total)`` is called after every pair, skipped ones included;
    ``style``: the model's mask style to score (default its first).
    Raises :class:`LungSamError` for a bad prompt kind, a missing folder or when no pair is
    usable.
    """
    if prompt not in PROMPTS:
        raise LungSamError(f"unknown prompt '{prompt}' (use {' or '.join(PROMPTS)})")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise LungSamError(f"{data_dir}: data folder not found")
    pairs = find_pairs(data_dir, exclude)
    if limit is not None:
        pairs = pairs[: max(0, int(limit))]
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    result = evaluate_pairs(loaded, pairs, prompt, device, progress, style, where=str(data_dir))
    result.summary["data_dir"] = str(data_dir)
    return result


def evaluate_pairs(
    loaded: LoadedModel,
    pairs: list[Pair],
    prompt: str = "union",
    device: str = "auto",
    progress: Progress | None = None,
    style: str | None = None,
    where: str = "evaluation",
) -> EvalResult:
    """Score ``loaded`` on ``pairs`` (what :func:`evaluate_model` runs on a folder's pairs, and
    the trainer pane on its held-back images). Unreadable pairs are skipped with a warning and
    listed; ``where`` names the data in the error raised when none is usable."""
    style_name = mask_styles(loaded.sam)[style_index(loaded.sam, style)]
    # Every image is embedded once: a one-item cache avoids holding hundreds of embeddings.
    predictor = Predictor(loaded, device=device, cache=EmbeddingCache(max_bytes=0))
    timing = dict.fromkeys(PHASES, 0.0)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for i, pair in enumerate(pairs):
        start = time.perf_counter()
        try:
            gt = load_ground_truth(pair)
        except LungSamError as exc:
            log.warning("skipping %s: %s", pair.image.name, exc)
            skipped.append({"name": pair.name, "file": pair.image.name, "reason": str(exc)})
            if progress:
                progress(i + 1, len(pairs))
            continue
        timing["load"] += time.perf_counter() - start
        row = {"name": pair.name, **evaluate_image(predictor, gt, prompt, timing, style_name)}
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        if progress:
            progress(i + 1, len(pairs))
    if not rows:
        first = skipped[0]["reason"] if skipped else "no pairs"
        raise LungSamError(f"{where}: no usable image/mask pair ({len(skipped)} skipped; {first})")
    result = EvalResult(rows)
    units = sorted({r["hd95_unit"] for r in rows})
    result.summary = {
        "n": len(rows),
        "n_skipped": len(skipped),
        "skipped": skipped,
        "prompt": prompt,
        "style": style_name,
        "model": {
            "name": loaded.name,
            "hash": loaded.model_hash,
            "source": loaded.source,
            "int8": loaded.is_int8,
        },
        "hd95_unit": units[0] if len(units) == 1 else "mixed",
        "metrics": summarize(rows, result.metric_names()),
        "timing": {**timing, "total": float(sum(r["seconds"] for r in rows))},
    }
    return result
