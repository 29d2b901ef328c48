"""The review queue's order (most doubtful first), its next image, the badge colours and the
folder job's progress line."""

from __future__ import annotations

import pytest

from app.gui.annotate.job_progress import progress_text
from app.gui.annotate.review_queue import next_doubtful, quality_color, sort_records
from engine.project import ImageRecord


def rec(name: str, status: str) -> ImageRecord:
    return ImageRecord(0, name, status, None, 1 if status != "new" else None)


RECORDS = [rec("a", "corrected"), rec("b", "model"), rec("c", "new"), rec("d", "model"), rec("e", "model"), rec("f", "skipped")]
QUALITIES = {"a": 0.01, "b": 0.9, "d": 0.2}  # e: a model mask without a score


def test_most_doubtful_first_puts_low_scores_first_then_unscored_then_the_rest():
    order = [r.rel_path for r in sort_records(RECORDS, QUALITIES, "doubtful")]
    assert order == ["d", "b", "e", "c", "a", "f"]  # a's old score does not count: it is corrected
    assert [r.rel_path for r in sort_records(RECORDS[::-1], QUALITIES, "name")] == list("abcdef")
    with pytest.raises(ValueError, match="unknown sort mode"):
        sort_records(RECORDS, QUALITIES, "size")


def test_next_doubtful_skips_the_current_image_and_reviewed_ones():
    assert RECORDS[next_doubtful(RECORDS, QUALITIES, current=0)].rel_path == "d"
    assert RECORDS[next_doubtful(RECORDS, QUALITIES, current=3)].rel_path == "b"
    only = [rec("x", "model"), rec("y", "corrected")]
    assert next_doubtful(only, {}, current=0) is None


def test_badge_runs_from_red_to_green():
    red, amber, green = quality_color(0.0), quality_color(0.95), quality_color(1.0)
    assert red[0] > 2 * red[1] and green[1] > 2 * green[0] and amber[0] > 200 and amber[1] > 150
    assert quality_color(-1) == red == quality_color(0.9) and quality_color(2) == green == quality_color(0.98)
    halfway = quality_color(0.96)
    assert green[0] < halfway[0] < amber[0]


def test_progress_line_says_rate_and_time_left():
    assert progress_text(0, 40, 0.0, None) == "segmenting 0 / 40"
    assert progress_text(12, 40, 35.08, 0.8, 1) == "segmenting 12 / 40, 35.1 images/s, 1 s left (1 unreadable)"
    assert progress_text(10, 400, 1.0, 390) == "segmenting 10 / 400, 1.0 images/s, 6 min left"
