"""The review queue: which image to look at next when model masks wait for a person.

Why it exists: after a folder is pre-segmented, most masks are fine and a few are wrong; the
quality score (0..1, higher = more trustworthy, :mod:`engine.propose.quality`) puts the
doubtful ones first, so the time a person spends goes where the errors are. "Unreviewed" is
the store's status ``model`` (model output nobody accepted or corrected yet). Qt-free: the
image list sorts with :func:`sort_records`, keys D and Y use :func:`next_doubtful`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.project import ImageRecord

SORT_MODES: dict[str, str] = {"name": "by name", "doubtful": "most doubtful first"}
_AFTER_MODEL = {"new": 2, "corrected": 3, "skipped": 4}


def doubtful_key(record: ImageRecord, qualities: Mapping[str, float]) -> tuple[int, float, str]:
    """Sort key, most doubtful first: scored model masks by ascending quality, then model
    masks without a score (drawn by hand, or by an older version), then new, corrected and
    skipped images; ties by name."""
    if record.status == "model":
        quality = qualities.get(record.rel_path)
        return (0, quality, record.rel_path) if quality is not None else (1, 0.0, record.rel_path)
    return (_AFTER_MODEL.get(record.status, 5), 0.0, record.rel_path)


def sort_records(records: Sequence[ImageRecord], qualities: Mapping[str, float], mode: str) -> list[ImageRecord]:
    """``records`` in the order of sort mode ``mode`` (a key of :data:`SORT_MODES`)."""
    if mode == "doubtful":
        return sorted(records, key=lambda r: doubtful_key(r, qualities))
    if mode == "name":
        return sorted(records, key=lambda r: r.rel_path)
    raise ValueError(f"unknown sort mode {mode!r}; expected one of {list(SORT_MODES)}")


def next_doubtful(records: Sequence[ImageRecord], qualities: Mapping[str, float], current: int) -> int | None:
    """Row of the most doubtful unreviewed image other than row ``current``; None when none is left."""
    rows = [i for i, r in enumerate(records) if r.status == "model" and i != current]
    return min(rows, key=lambda i: doubtful_key(records[i], qualities)) if rows else None


def quality_color(quality: float) -> tuple[int, int, int]:
    """Badge colour: red (doubtful) through amber to green (trustworthy)."""
    q = min(max(quality, 0.0), 1.0)
    if q < 0.5:
        t = q / 0.5
        return (210, int(60 + 130 * t), 50)
    t = (q - 0.5) / 0.5
    return (int(210 - 170 * t), int(190 + 10 * t), int(50 + 40 * t))
