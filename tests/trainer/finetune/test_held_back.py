"""Before a run: how many held-back images the comparison needs, said with the split's own
rounding, and a split with nothing held back refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.data import Pair, split_pairs
from trainer.finetune import (
    MIN_HELD_BACK,
    SplitPreview,
    groups_for_held_back,
    held_back_note,
    split_problem,
)


def held_back(n_images: int, fraction: float) -> int:
    pairs = [Pair(f"img{i}.png", Path(f"img{i}.png"), None) for i in range(n_images)]
    return len(split_pairs(pairs, fraction, 0)[1])


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.25, 0.3, 0.5])
def test_the_stated_number_of_patients_is_the_first_that_holds_back_enough(fraction):
    n = groups_for_held_back(fraction)
    assert held_back(n, fraction) >= MIN_HELD_BACK > held_back(n - 1, fraction)


def test_the_note_states_the_minimum_only_when_too_few_are_held_back():
    note = held_back_note(1, 0.2)
    assert note is not None and "Only 1 image(s) held back" in note and f"at least {MIN_HELD_BACK}" in note
    assert "about 23 patients' corrected images at 20% held back" in note
    assert held_back_note(MIN_HELD_BACK, 0.2) is None


def test_a_split_with_nothing_held_back_cannot_start():
    assert "correct images of at least 2 patients" in split_problem(SplitPreview(["a.png"], [], 1))
    assert split_problem(SplitPreview(["a.png"], ["b.png"], 2)) is None
