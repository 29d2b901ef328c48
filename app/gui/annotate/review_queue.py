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


COLOR_STOPS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.0, (200, 50, 45)),  # red: doubtful
    (0.92, (200, 50, 45)),
    (0.95, (225, 165, 35)),  # amber
    (0.97, (40, 160, 75)),  # green: trustworthy
)
"""Badge colours, interpolated between the stops, placed where the shipped model's score
separates good from bad zero-click masks on the selection set the score was chosen on
(``benchmarks/zero_click.py``, 300 covidqu_ex/train + 152 v7_covid_ieee8023 images, "bad" =
Dice < 0.95): below 0.92, 92 % of the masks were bad (16 % of the images); below 0.95, 55 %;
above 0.97, none."""


def quality_color(quality: float) -> tuple[int, int, int]:
    """Badge colour of ``quality``: red (doubtful) through amber to green (trustworthy)."""
    q = min(max(quality, 0.0), 1.0)
    for (q0, c0), (q1, c1) in zip(COLOR_STOPS, COLOR_STOPS[1:], strict=False):
        if q <= q1:
            t = (q - q0) / (q1 - q0)
            return tuple(round(a + (b - a) * t) for a, b in zip(c0, c1, strict=True))  # type: ignore[return-value]
    return COLOR_STOPS[-1][1]
