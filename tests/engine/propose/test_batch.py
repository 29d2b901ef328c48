"""Many images at once: model workers give the one-worker results in input order, a gate
pauses the model work, a cancel stops, and the lung boxes share one decoder pass with their
jittered copies without changing what comes out."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.models import load_model
from engine.predict import EmbeddingCache, Predictor
from engine.propose import (
    jitter_boxes,
    propose_lungs,
    propose_many,
    propose_scored,
    quality_score,
    quality_signals,
)
from tests.conftest import synthetic_cxr
from trainer.evaluation import dice


@pytest.fixture(scope="module")
def shipped():
    return load_model(None)


@pytest.fixture
def folder(tmp_path: Path) -> list[Path]:
    paths = []
    for i in range(5):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(synthetic_cxr(200 + 8 * i, 180, seed=i)).save(path)
        paths.append(path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    paths.insert(2, broken)
    return paths


def _predictor(model) -> Predictor:
    return Predictor(model, device="cpu", cache=EmbeddingCache(max_bytes=0))


def test_two_workers_give_the_one_worker_results_in_input_order(shipped, folder):
    one = list(propose_many(_predictor(shipped), folder, workers=1))
    two = list(propose_many(_predictor(shipped), folder, workers=2))
    assert [r.path for r in one] == [r.path for r in two] == folder
    assert not two[2].ok and "broken.png" in (two[2].error or "")
    for a, b in zip(one, two, strict=True):
        if not a.ok:
            continue
        assert a.proposal is not None and b.proposal is not None
        assert b.quality == pytest.approx(a.quality, abs=2e-3)
        for lung in range(2):
            assert dice(a.proposal.masks[lung], b.proposal.masks[lung]) > 0.99


def test_the_gate_runs_before_each_images_model_work_and_pauses_it(shipped, folder):
    opened = threading.Event()
    calls: list[float] = []

    def gate() -> None:
        calls.append(time.monotonic())
        opened.wait(10)

    results: list = []
    runner = threading.Thread(target=lambda: results.extend(propose_many(_predictor(shipped), folder, workers=2, gate=gate)))
    runner.start()
    time.sleep(1.0)
    paused = list(results)  # only the unreadable file could pass, and it is third in order
    opened.set()
    runner.join(60)
    assert paused == []
    assert len(results) == len(folder)
    assert len(calls) == len(folder) - 1  # once per readable image, never for the broken file


def test_a_cancel_stops_after_the_images_in_hand(shipped, folder):
    cancel = threading.Event()
    seen = []
    for result in propose_many(_predictor(shipped), folder * 3, workers=2, cancel=cancel):
        seen.append(result)
        cancel.set()
    assert len(seen) == 1


def test_one_decoder_pass_gives_what_two_calls_give(shipped):
    predictor = _predictor(shipped)
    predictor.set_image(synthetic_cxr(240, 200))
    boxes = np.array([[20.0, 30, 95, 210], [105, 30, 185, 210]])
    probes = jitter_boxes(boxes, predictor.original_size)
    together, probe_low, probe_iou = predictor.predict_and_probe(boxes, probes)
    alone = predictor.predict(boxes=boxes)
    low, iou = predictor.predict_low_res(probes)
    assert probes.shape == (8, 4)
    assert np.array_equal(together.masks, alone.masks)
    np.testing.assert_allclose(together.low_res_logits, alone.low_res_logits, atol=1e-3)
    np.testing.assert_allclose(together.scores, alone.scores, atol=1e-4)
    np.testing.assert_allclose(probe_low, low, atol=1e-3)
    np.testing.assert_allclose(probe_iou, iou, atol=1e-4)


def test_propose_scored_scores_as_the_separate_steps_do(shipped):
    predictor = _predictor(shipped)
    predictor.set_image(synthetic_cxr(240, 200, seed=3))
    proposal, signals, quality = propose_scored(predictor)
    assert proposal.jitter_low_res is not None and proposal.jitter_low_res.shape[0] == 8
    separate = propose_lungs(predictor)
    assert separate.jitter_low_res is None
    expected = quality_signals(predictor, separate)
    assert np.array_equal(proposal.masks, separate.masks)
    assert signals.jitter == pytest.approx(expected.jitter, abs=1e-3)
    assert quality == pytest.approx(quality_score(expected, separate.found), abs=1e-3)
