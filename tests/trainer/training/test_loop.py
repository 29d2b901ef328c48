"""The shared training loop: overfitting works, resume replays the same run, DDP ranks agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.models import load_model_folder
from engine.sam import build_sam
from tests.sam_factory import tiny_config
from trainer.data import find_pairs, load_set
from trainer.training import (
    BaseStageConfig,
    EventWriter,
    LoopConfig,
    Trainer,
    base_stage,
    evaluate_set,
    lr_factor,
    read_events,
)

ROOT = Path(__file__).resolve().parents[3]
SMALL = tiny_config(img_size=128, encoder_embed_dim=64, prompt_embed_dim=64, decoder_mlp_dim=128)


def make_trainer(data, run_dir, epochs, events=None, seed=0, augment=False, clicks=True):
    torch.manual_seed(0)
    model = build_sam(SMALL)
    groups, hooks = base_stage(model, SMALL, BaseStageConfig(lr=3e-3), {"test": True})
    interactive = {} if clicks else {"max_clicks": 0, "point_fraction": 0.0}
    loop = LoopConfig(epochs=epochs, batch_size=4, augment=augment, jitter_px=0 if not augment else 10,
                      warmup_steps=10, seed=seed, **interactive)
    return Trainer(model, SMALL, groups, data, data, run_dir, loop, events or EventWriter(None), hooks,
                   "cpu", progress=False)


def test_small_model_overfits_four_real_images(small_set, tmp_path):
    data = load_set(find_pairs(small_set)[:4], SMALL.img_size)
    trainer = make_trainer(data, tmp_path / "run", epochs=50, clicks=False)  # box prompts only, as before
    history = trainer.run()
    final = evaluate_set(trainer.model, SMALL, data)
    assert final["val_dice"] > 0.9 and final["val_dice_per_lung"] > 0.9
    best = load_model_folder(tmp_path / "run" / "best")
    assert best.meta["metrics"]["epoch"] == history.best_epoch
    assert evaluate_set(best.sam, SMALL, data)["val_score"] == pytest.approx(history.best_score, abs=1e-6)


def test_resume_continues_exactly_like_an_uninterrupted_run(small_set, tmp_path):
    data = load_set(find_pairs(small_set), SMALL.img_size)
    straight = make_trainer(data, tmp_path / "a", epochs=4, augment=True)
    straight.run()
    first = make_trainer(data, tmp_path / "b", epochs=4, augment=True)
    first.run(stop_at=2 * first.steps_per_epoch)  # "killed" after epoch 2 (checkpoint written)
    resumed = make_trainer(data, tmp_path / "b", epochs=4, augment=True)
    assert resumed.resume() and resumed.step == 2 * resumed.steps_per_epoch
    resumed.run()
    for key, value in straight.model.state_dict().items():
        assert torch.allclose(value, resumed.model.state_dict()[key], atol=1e-6), key
    assert [e["epoch"] for e in resumed.history.epochs] == [1, 2, 3, 4]


def test_events_cover_progress_and_end(small_set, tmp_path):
    data = load_set(find_pairs(small_set)[:4], SMALL.img_size)
    events_file = tmp_path / "events.jsonl"
    writer = EventWriter(events_file, stage="base")
    trainer = make_trainer(data, tmp_path / "run", epochs=2, events=writer)
    trainer.loop.log_every = 1
    trainer.run()
    writer.close()
    kinds = [e["event"] for e in read_events(events_file)]
    assert kinds[0] == "start" and kinds.count("epoch") == 2 and "checkpoint" in kinds
    step = next(e for e in read_events(events_file) if e["event"] == "step")
    assert {"loss", "lr", "eta_s", "epoch", "images_per_s"} <= set(step)


def test_learning_rate_warms_up_then_decays():
    values = [lr_factor(s, 100, 10, 0.02) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))
    assert values[-1] == pytest.approx(0.02, abs=1e-3)


def test_two_process_ddp_ranks_end_with_identical_weights(small_set, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "app.cli", "train", "base", "--data", str(small_set), "--val", str(small_set),
           "--arch", "tiny", "--out", str(out), "--epochs", "2", "--batch-size", "2", "--threads", "1"]
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True, timeout=300)
    digests = [(out / "ddp" / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["epochs"]) == 2
    starts = [e for e in read_events(out / "events.jsonl") if e["event"] == "start"]
    assert starts[0]["steps_per_epoch"] == 2, "8 images / (2 per batch x 2 ranks)"
