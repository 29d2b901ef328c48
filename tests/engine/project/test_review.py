"""The review queue's read API: the newest model annotation's zero-click quality per image."""

from __future__ import annotations

import numpy as np


def _mask() -> dict[str, np.ndarray]:
    mask = np.zeros((4, 5), bool)
    mask[1:3, 1:4] = True
    return {"right lung": mask, "left lung": ~mask}


def test_model_qualities_reads_the_newest_model_annotations_score(store):
    store.save_annotation("a.png", _mask(), "model", prompts={"auto": {"quality": 0.25, "boxes": [[0, 0, 2, 2]]}})
    store.save_annotation("a.png", _mask(), "model", prompts={"auto": {"quality": 0.75}})
    store.save_annotation("b.png", _mask(), "model", prompts={"labels": {}})  # a hand-drawn box: no score
    assert store.model_qualities() == {"a.png": 0.75}


def test_a_corrected_version_keeps_the_model_score_and_an_unscored_model_version_drops_it(store):
    store.save_annotation("a.png", _mask(), "model", prompts={"auto": {"quality": 0.4}})
    store.save_annotation("a.png", _mask(), "corrected", prompts={"reason": "accepted"})
    store.save_annotation("b.png", _mask(), "model", prompts={"auto": {"quality": 0.9}})
    store.save_annotation("b.png", _mask(), "model", prompts={})
    assert store.model_qualities() == {"a.png": 0.4}


def test_qualities_survive_reopening(folder, store):
    from engine.project import ProjectStore

    store.save_annotation("sub/c.dcm", _mask(), "model", prompts={"auto": {"quality": 0}})
    store.close()
    with ProjectStore.open(folder, read_only=True) as again:
        assert again.model_qualities() == {"sub/c.dcm": 0.0}
