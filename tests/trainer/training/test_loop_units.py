"""The training loop's small parts, fast enough to run for every planted bug (no data files).

The recipe defaults, the learning-rate schedule, seeded batch order, checkpoints and resume,
when the best epoch is exported, events, the disk-space check and the torchrun plumbing.
The slower whole-run checks (overfitting real images, resume equals an uninterrupted run,
DDP ranks agree) are in ``test_loop.py``.
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from engine.errors import TrainingError
from engine.sam import build_sam
from tests.sam_factory import tiny_config
from tests.train_factory import synthetic_set
from trainer.training import evaluate_set
from trainer.training import loop as loop_module
from trainer.training.loop import (
    CHECKPOINT,
    DistInfo,
    History,
    LoopConfig,
    StageHooks,
    Trainer,
    autocast_dtype,
    check_disk_space,
    init_distributed,
    lr_factor,
)

CONFIG = tiny_config(img_size=64)


class Recorder:
    """An EventWriter stand-in that keeps what was emitted."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: str, **fields: Any) -> None:
        self.events.append({"event": event, **fields})

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events]


def make_trainer(tmp_path: Path, n: int = 8, hooks: StageHooks | None = None, **loop_args) -> Trainer:
    torch.manual_seed(0)
    model = build_sam(CONFIG)
    groups = [{"params": list(model.mask_decoder.parameters()), "lr": 0.01, "name": "decoder"}]
    model.image_encoder.requires_grad_(False)
    args = {"epochs": 2, "batch_size": 2, "augment": False, "jitter_px": 0, "warmup_steps": 1,
            "max_clicks": 0, "point_fraction": 0.0, "val_clicks": 0, **loop_args}
    data = synthetic_set(CONFIG.img_size, n)
    return Trainer(model, CONFIG, groups, data, data, tmp_path, LoopConfig(**args), Recorder(), hooks,
                   "cpu", progress=False)


def validate_as(monkeypatch, score: float) -> None:
    """Skip the real validation: every epoch scores ``score`` (what these tests steer by)."""
    monkeypatch.setattr(loop_module, "evaluate_set", lambda *a, **k: {"val_score": score})


def tick(monkeypatch, seconds: float) -> None:
    """The loop's clock moves ``seconds`` at every read (0 at the first)."""
    reads = itertools.count()
    monkeypatch.setattr(loop_module.time, "monotonic", lambda: seconds * next(reads))


def test_loop_defaults_are_the_recipe_the_shipped_model_was_trained_with():
    """tools/build_default_model.sh relies on these: a changed default silently changes the
    model a rebuild makes (and every figure in the model card)."""
    c = LoopConfig()
    assert (c.epochs, c.batch_size, c.warmup_steps, c.min_lr_ratio, c.weight_decay) == (10, 16, 100, 0.02, 0.01)
    assert (c.jitter_px, c.augment, c.seed, c.grad_clip, c.amp) == (20.0, True, 0, 1.0, "auto")
    assert (c.checkpoint_every_s, c.log_every, c.val_batch_size, c.threads) == (300.0, 10, 32, None)
    assert (c.max_clicks, c.point_fraction, c.feedback_fraction, c.val_clicks) == (4, 0.25, 0.8, 3)


def test_learning_rate_factor_at_the_schedule_points():
    assert lr_factor(0, 100, 10, 0.02) == pytest.approx(0.1)
    assert lr_factor(4, 100, 10, 0.02) == pytest.approx(0.5)
    assert lr_factor(10, 100, 10, 0.02) == pytest.approx(1.0)  # the peak, right after warm-up
    assert lr_factor(55, 100, 10, 0.02) == pytest.approx(0.02 + 0.98 * 0.5)  # half way down
    assert lr_factor(100, 100, 10, 0.02) == pytest.approx(0.02)
    assert lr_factor(500, 100, 10, 0.1) == pytest.approx(0.1)  # past the end: stays at the floor
    assert lr_factor(3, 3, 3, 0.5) == pytest.approx(1.0)  # no decay span: no division by zero
    assert lr_factor(4, 3, 3, 0.5) == pytest.approx(0.5)
    expected = 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * 20 / 90))
    assert lr_factor(30, 100, 10, 0.02) == pytest.approx(expected)


def test_autocast_follows_the_setting_and_the_hardware(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype("off", cpu) is None and autocast_dtype("off", cuda) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype("auto", cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype("auto", cuda) is None
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert autocast_dtype("auto", cpu) is (torch.bfloat16 if native else None)


def test_disk_space_check_makes_the_folder_and_refuses_a_full_disk(tmp_path, monkeypatch):
    deep = tmp_path / "a" / "b" / "run"
    check_disk_space(deep, 1)
    assert deep.is_dir()
    real = os.statvfs(deep)
    monkeypatch.setattr(loop_module.os, "statvfs",
                        lambda p: SimpleNamespace(f_bavail=10, f_frsize=2**20, f_blocks=real.f_blocks))
    check_disk_space(deep, 10 * 2**20)  # exactly enough
    with pytest.raises(TrainingError, match=r"only 10 MiB free on disk, need about 200 MiB"):
        check_disk_space(deep, 200 << 20)
    monkeypatch.setattr(loop_module.os, "statvfs",  # rounded to the nearest MiB, not floored
                        lambda p: SimpleNamespace(f_bavail=1, f_frsize=int(10.6 * 2**20), f_blocks=1))
    with pytest.raises(TrainingError, match=r"only 11 MiB free on disk, need about 201 MiB"):
        check_disk_space(deep, int(200.7 * 2**20))


def test_dist_info_outside_torchrun(monkeypatch):
    info = DistInfo.current()
    assert (info.rank, info.world_size, info.is_main) == (0, 1, True)
    assert not DistInfo(rank=1, world_size=2).is_main
    calls: list[str] = []
    import torch.distributed as dist

    monkeypatch.setattr(dist, "barrier", lambda *a, **k: calls.append("barrier"))
    DistInfo().barrier()
    assert calls == []
    DistInfo(rank=0, world_size=2).barrier()
    assert calls == ["barrier"]


@pytest.mark.parametrize("world, device, backend", [("1", "cpu", None), ("2", "cpu", "gloo"), ("2", "cuda", "nccl")])
def test_init_distributed_joins_only_under_torchrun(monkeypatch, world, device, backend):
    import torch.distributed as dist

    joined: list[str] = []
    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.setattr(dist, "init_process_group", lambda b, *a, **k: joined.append(b))
    assert init_distributed(torch.device(device)) == DistInfo()
    assert joined == ([backend] if backend else [])


def test_steps_learning_rates_and_seeded_batch_order(tmp_path):
    trainer = make_trainer(tmp_path, n=9, epochs=3, batch_size=2, weight_decay=0.2)
    assert (trainer.steps_per_epoch, trainer.total_steps) == (4, 12)  # 9 // 2, the last one dropped
    group = trainer.optimizer.param_groups[0]
    assert group["base_lr"] == 0.01 and group["weight_decay"] == 0.2
    first, order0 = trainer._batch(0, 0)
    second, _ = trainer._batch(0, 1)
    assert sorted(order0.tolist()) == list(range(9))
    assert first.tolist() == order0[:2].tolist() and second.tolist() == order0[2:4].tolist()
    again, order0b = make_trainer(tmp_path / "b", n=9)._batch(0, 0)
    assert np.array_equal(order0, order0b) and np.array_equal(first, again)
    _, order1 = trainer._batch(1, 0)
    assert not np.array_equal(order0, order1)  # every epoch is reshuffled
    other_seed = make_trainer(tmp_path / "c", n=9, seed=1)._batch(0, 0)[1]
    assert not np.array_equal(order0, other_seed)
    trainer.dist = DistInfo(rank=1, world_size=2)  # rank 1 takes the second slice of each step
    assert trainer._batch(0, 0)[0].tolist() == order0[2:4].tolist()
    assert trainer._batch(0, 1)[0].tolist() == order0[6:8].tolist()
    assert make_trainer(tmp_path / "d", n=1, batch_size=4).steps_per_epoch == 1


def test_a_step_sets_the_scheduled_rate_adds_the_extra_loss_and_reports_the_allocator(tmp_path):
    seen: list[int] = []
    hooks = StageHooks(
        extra_loss=lambda m: torch.tensor(0.25, requires_grad=True),
        after_backward=lambda step: seen.append(step) or ({"budget": 3} if step == 2 else None),
    )
    trainer = make_trainer(tmp_path, hooks=hooks, epochs=10, warmup_steps=4)  # 40 steps, warm-up 4
    before = [p.detach().clone() for p in trainer.optimizer.param_groups[0]["params"]]
    parts = trainer.train_step(trainer._batch(0, 0)[0])
    assert trainer.step == 1 and seen == [1]
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * lr_factor(0, 40, 4, 0.02))
    assert parts["extra_loss"] == 0.25 and parts["loss"] > 0.25
    moved = [not torch.equal(b, p) for b, p in zip(before, trainer.optimizer.param_groups[0]["params"], strict=True)]
    assert any(moved)
    trainer.train_step(trainer._batch(0, 1)[0])
    assert seen == [1, 2]
    assert [e for e in trainer.events.events if e["event"] == "rank"] == [{"event": "rank", "step": 2, "budget": 3}]
    short = make_trainer(tmp_path / "s", epochs=1, warmup_steps=100)  # 4 steps: warm-up capped at 1
    short.train_step(short._batch(0, 0)[0])
    assert short.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    short.train_step(short._batch(0, 1)[0])  # step 1: the peak (a warm-up of 1 step, not none)
    assert short.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    short.train_step(short._batch(0, 2)[0])
    assert short.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * lr_factor(2, 4, 1, 0.02))


def test_gradients_are_clipped_to_the_configured_norm(tmp_path, monkeypatch):
    norms: list[float] = []
    real = torch.nn.utils.clip_grad_norm_

    def recording(params, max_norm, *args, **kwargs):
        norms.append(max_norm)
        return real(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording)
    make_trainer(tmp_path / "a", grad_clip=0.5).train_step(np.arange(2))
    assert norms == [0.5]
    make_trainer(tmp_path / "b", grad_clip=0.0).train_step(np.arange(2))
    assert norms == [0.5]  # 0 turns clipping off


def test_run_validates_each_epoch_exports_only_improved_eligible_epochs_and_finishes(tmp_path, monkeypatch):
    scores = iter([0.5, 0.7, 0.6, 0.9])
    monkeypatch.setattr(loop_module, "evaluate_set",
                        lambda *a, **k: {"val_dice": 0.0, "val_score": next(scores)})
    exported: list[tuple[str, int]] = []
    finished: list[Path] = []
    hooks = StageHooks(
        export_best=lambda path, metrics: exported.append((path.name, metrics["best_epoch"])),
        eligible_for_best=lambda epoch: epoch >= 2,
        on_finish=lambda run_dir, history: finished.append(run_dir) or {"int8_model": "x"},
    )
    trainer = make_trainer(tmp_path, hooks=hooks, epochs=4, log_every=3)
    history = trainer.run()
    assert exported == [("best", 2), ("best", 4)]  # epoch 1 not eligible, epoch 3 not better
    assert (history.best_epoch, history.best_score) == (4, 0.9)
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3, 4]
    assert finished == [tmp_path]
    kinds = trainer.events.kinds()
    assert kinds[0] == "start" and kinds[-1] == "finished_stage" and kinds.count("epoch") == 4
    assert [e["best"] for e in trainer.events.events if e["event"] == "epoch"] == [False, True, False, True]
    steps = [(e["step"], e["epoch"]) for e in trainer.events.events if e["event"] == "step"]
    assert steps == [(3, 1), (6, 2), (9, 3), (12, 3), (15, 4)]  # every log_every steps of the 16
    assert kinds.count("checkpoint") == 4 and (tmp_path / CHECKPOINT).is_file()


def test_a_stopped_run_checkpoints_on_time_and_resumes_where_it_stopped(tmp_path, monkeypatch):
    validate_as(monkeypatch, 0.5)
    state = {"calls": 0}
    hooks = StageHooks(state=lambda: dict(state), load_state=lambda s: state.update(restored=s["calls"]),
                       on_finish=lambda *a: state.update(finished=True))
    trainer = make_trainer(tmp_path, hooks=hooks, epochs=2, checkpoint_every_s=-1.0)
    state["calls"] = 7
    trainer.run(stop_at=3)
    assert trainer.step == 3 and "finished" not in state
    kinds = trainer.events.kinds()
    assert kinds.count("checkpoint") == 3  # steps 1-3 (every step, as the interval is past); epoch 1 ends at 4
    resumed = make_trainer(tmp_path, hooks=hooks, epochs=2)
    assert resumed.resume() and resumed.step == 3 and state["restored"] == 7
    assert resumed.events.kinds() == ["resumed"]
    resumed.run()
    assert resumed.step == 8 and state["finished"] is True
    assert [e["resumed_step"] for e in resumed.events.events if e["event"] == "start"] == [3]
    assert not make_trainer(tmp_path / "empty").resume()


def test_an_unreadable_checkpoint_is_a_training_error_naming_the_file(tmp_path):
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match=rf"{CHECKPOINT}: cannot read the checkpoint to resume"):
        make_trainer(tmp_path).resume()


def test_checkpoint_holds_what_resume_needs(tmp_path):
    trainer = make_trainer(tmp_path, hooks=StageHooks(state=lambda: {"k": 1}))
    trainer.train_step(trainer._batch(0, 0)[0])
    trainer.history.best_score, trainer.history.best_epoch = 0.8, 1
    trainer.save_checkpoint()
    saved = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert saved["step"] == 1 and saved["hooks"] == {"k": 1}
    assert saved["history"] == {"epochs": [], "best_score": 0.8, "best_epoch": 1}
    assert saved["loop"]["batch_size"] == 2 and set(saved) == {"model", "optimizer", "step", "history", "hooks", "loop"}
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in saved["model"].items())
    trainer.dist = DistInfo(rank=1, world_size=2)
    (tmp_path / CHECKPOINT).unlink()
    trainer.save_checkpoint()
    assert not (tmp_path / CHECKPOINT).exists()  # only rank 0 writes


def record_forward(trainer: Trainer) -> list[tuple[int, bool]]:
    """Replace the model call by one that records (click rounds, logits fed back) per step."""
    seen: list[tuple[int, bool]] = []
    real = trainer.forward

    def recording(x, batch, targets, limits, rounds, feedback, rng):
        seen.append((rounds, feedback))
        return real(x, batch, targets, limits, 0, False, rng)

    trainer.forward = recording
    return seen


#: (click rounds, logits fed back) of the first 12 steps at seed 0, max_clicks 2, feedback 0.5
GOLDEN_DRAWS = [(2, False), (2, False), (1, True), (1, True), (2, True), (2, True), (0, True), (0, False),
                (1, False), (1, True), (0, True), (0, False)]


#: the same for the first 8 steps at max_clicks 0 (Stage 0, boxes only), feedback 0.5
GOLDEN_DRAWS_NO_CLICKS = [(0, False), (0, False), (0, False), (0, True), (0, False), (0, False), (0, True),
                          (0, False)]


def test_click_rounds_and_feedback_are_drawn_per_step_from_the_seed(tmp_path):
    """The draws a rebuild of the shipped model replays: (seed, step) fixes them, and with
    max_clicks K each step draws 0..K rounds (K = 0: never a click)."""
    trainer = make_trainer(tmp_path, epochs=3, max_clicks=2, point_fraction=0.25, feedback_fraction=0.5)
    seen = record_forward(trainer)
    for _ in range(12):
        trainer.train_step(trainer._batch(*divmod(trainer.step, trainer.steps_per_epoch))[0])
    assert seen == GOLDEN_DRAWS
    assert {r for r, _ in seen} == {0, 1, 2} and {f for _, f in seen} == {False, True}
    once = make_trainer(tmp_path / "one", max_clicks=1)
    seen_once = record_forward(once)
    for _ in range(4):
        once.train_step(once._batch(0, once.step)[0])
    assert {r for r, _ in seen_once} == {0, 1}
    never = make_trainer(tmp_path / "zero", epochs=2, max_clicks=0, feedback_fraction=0.5)
    seen_never = record_forward(never)
    for _ in range(8):
        never.train_step(never._batch(*divmod(never.step, never.steps_per_epoch))[0])
    assert seen_never == GOLDEN_DRAWS_NO_CLICKS  # no draw spent on the rounds either


class RecordingBar:
    """A tqdm stand-in: counts updates and keeps the postfixes."""

    made: list[RecordingBar] = []

    def __init__(self, total: int, initial: int, **kwargs: Any) -> None:
        self.total, self.n, self.postfix, self.closed = total, initial, [], False
        self.kwargs = kwargs
        RecordingBar.made.append(self)

    def update(self, k: int) -> None:
        self.n += k

    def set_postfix(self, **fields: Any) -> None:
        self.postfix.append(fields)

    def close(self) -> None:
        self.closed = True


def test_the_progress_bar_counts_steps_and_names_the_one_based_epoch(tmp_path, monkeypatch):
    validate_as(monkeypatch, 0.5)
    monkeypatch.setattr(loop_module, "tqdm", RecordingBar)
    RecordingBar.made.clear()
    trainer = make_trainer(tmp_path, epochs=2)
    trainer.run(stop_at=5)
    bar = RecordingBar.made[-1]
    assert (bar.total, bar.n, bar.closed) == (8, 5, True)
    assert bar.kwargs == {"disable": True, "unit": "step", "dynamic_ncols": True}  # follows the terminal width
    assert [p["epoch"] for p in bar.postfix] == [1, 1, 1, 1, 2]
    resumed = make_trainer(tmp_path, epochs=2)
    resumed.resume()
    resumed.run()
    assert (RecordingBar.made[-1].n, RecordingBar.made[-1].total) == (8, 8)


def test_progress_events_report_the_measured_rate(tmp_path, monkeypatch):
    validate_as(monkeypatch, 0.5)
    tick(monkeypatch, 0.25)
    trainer = make_trainer(tmp_path, epochs=2, log_every=1)
    trainer.run()
    steps = [e for e in trainer.events.events if e["event"] == "step"]
    assert len(steps) == 8
    for e in steps:  # 0.25 s a clock read; the loop reads it once per step after the start
        assert e["images_per_s"] > 0 and e["eta_s"] >= 0
    assert steps[-1]["eta_s"] == 0.0
    frozen = make_trainer(tmp_path / "frozen", epochs=1, log_every=1)
    tick(monkeypatch, 0.0)  # a clock that never moves
    frozen.run()
    rates = [e["images_per_s"] for e in frozen.events.events if e["event"] == "step"]
    assert rates[0] == pytest.approx(1 / 1e-6 * 2)  # guarded, not a division by zero


def test_no_best_epoch_is_minus_one_and_a_zero_score_still_counts(tmp_path, monkeypatch):
    """summary.json's ``best_epoch`` -1 (score -1.0) means no epoch was ever kept: every
    validation failed (NaN). A real score of 0.0 is still a first best."""
    assert (History().best_score, History().best_epoch, History().epochs) == (-1.0, -1, [])
    with pytest.raises(Exception, match="cannot assign"):
        DistInfo().rank = 1  # type: ignore[misc]
    exported: list[int] = []
    hooks = StageHooks(export_best=lambda path, metrics: exported.append(metrics["best_epoch"]))
    validate_as(monkeypatch, float("nan"))
    history = make_trainer(tmp_path / "nan", hooks=hooks).run()
    assert (history.best_epoch, history.best_score, exported) == (-1, -1.0, [])
    validate_as(monkeypatch, 0.0)
    history = make_trainer(tmp_path / "zero", hooks=hooks).run()
    assert (history.best_epoch, history.best_score, exported) == (1, 0.0, [1])


@pytest.mark.parametrize("amp, expected", [("bf16", torch.bfloat16), ("off", None)])
def test_the_forward_runs_under_the_chosen_autocast(tmp_path, amp, expected):
    trainer = make_trainer(tmp_path, amp=amp)
    seen: list[tuple[bool, torch.dtype]] = []
    real = trainer.forward

    def recording(*args):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return real(*args)

    trainer.forward = recording
    trainer.train_step(np.arange(2))
    enabled, dtype = seen[0]
    assert enabled is (expected is not None)
    if expected is not None:
        assert dtype == expected


def test_warm_up_is_at_most_a_tenth_of_the_run(tmp_path):
    trainer = make_trainer(tmp_path, epochs=25, warmup_steps=1000)  # 100 steps: warm-up 10
    assert trainer.total_steps == 100
    trainer.train_step(np.arange(2))
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 1 / 10)
    odd = make_trainer(tmp_path / "odd", n=6, epochs=15, warmup_steps=1000)  # 45 steps: 4, not 4.5
    assert odd.total_steps == 45
    odd.train_step(np.arange(2))
    assert odd.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 1 / 4)


@pytest.mark.parametrize("max_clicks, val_clicks, expected", [(0, 3, 0), (1, 2, 2), (4, 3, 3)])
def test_validation_scores_clicks_only_when_the_run_trains_them(tmp_path, monkeypatch, max_clicks, val_clicks,
                                                                 expected):
    asked: list[int] = []
    monkeypatch.setattr(loop_module, "evaluate_set",
                        lambda *a, clicks=0, **k: asked.append(clicks) or {"val_score": 0.5})
    make_trainer(tmp_path, epochs=1, max_clicks=max_clicks, val_clicks=val_clicks).run()
    assert asked == [expected]


def test_time_left_is_the_remaining_steps_at_the_measured_rate(tmp_path, monkeypatch):
    """A slow run (3.7 s a clock read): the events' rate and time left agree with each other."""
    validate_as(monkeypatch, 0.5)
    tick(monkeypatch, 3.7)
    trainer = make_trainer(tmp_path, epochs=2, log_every=1)
    trainer.run()
    for e in trainer.events.events:
        if e["event"] == "step" and e["step"] < trainer.total_steps:
            steps_per_s = e["images_per_s"] / 2
            assert steps_per_s < 1
            assert e["eta_s"] == pytest.approx((trainer.total_steps - e["step"]) / steps_per_s, rel=0.05)
    step_etas = [e["eta_s"] for e in trainer.events.events if e["event"] == "step"]
    assert all(eta == round(eta, 1) for eta in step_etas)  # tenths, in step events too
    assert any(eta != round(eta) for eta in step_etas)
    epoch_etas = [e["eta_s"] for e in trainer.events.events if e["event"] == "epoch"]
    assert all(eta == round(eta, 1) for eta in epoch_etas) and epoch_etas[-1] == 0.0
    assert epoch_etas[0] != round(epoch_etas[0])  # tenths of a second, not whole seconds


def test_under_torchrun_the_forward_is_wrapped_for_steps_that_leave_parameters_unused(tmp_path, monkeypatch):
    """A step without points or without a fed-back mask never touches the point embeddings or
    the mask downscaling: DDP must be told, or the next step stops with a reduction error."""
    wrapped: list[dict[str, Any]] = []

    class RecordingDDP(torch.nn.Module):
        def __init__(self, module, **kwargs):
            super().__init__()
            self.module = module
            wrapped.append(kwargs)

    monkeypatch.setattr(loop_module.DistInfo, "current", classmethod(lambda cls: cls(rank=0, world_size=2)))
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", RecordingDDP)
    trainer = make_trainer(tmp_path, n=8, batch_size=2)
    assert wrapped == [{"find_unused_parameters": True, "device_ids": None}]
    assert isinstance(trainer.forward, RecordingDDP)
    assert trainer.steps_per_epoch == 2  # 8 images / (2 per batch x 2 ranks)


def test_a_batch_without_a_lung_is_skipped_and_the_run_still_ends(tmp_path, monkeypatch):
    validate_as(monkeypatch, 0.5)
    real = loop_module.batch_prompts
    calls = {"n": 0}

    def sometimes_empty(labels, **kwargs):
        calls["n"] += 1
        if calls["n"] > 20:  # the bug this guards: the same empty batch drawn forever
            raise RuntimeError("the run does not move past a batch without a lung")
        if calls["n"] == 2:  # the second step's batch: every lung cropped away
            return real(torch.zeros_like(labels), **kwargs)
        return real(labels, **kwargs)

    monkeypatch.setattr(loop_module, "batch_prompts", sometimes_empty)
    trainer = make_trainer(tmp_path / "a" / "b", epochs=2, log_every=1)  # a run folder not made yet
    trainer.run()
    assert trainer.step == trainer.total_steps == 8 and calls["n"] == 8
    steps = [e["step"] for e in trainer.events.events if e["event"] == "step"]
    assert steps == [1, 3, 4, 5, 6, 7, 8]  # step 2 trained nothing, so it logged nothing


#: the first 4 steps at seed 3, max_clicks 2, feedback 0.5
GOLDEN_DRAWS_SEED_3 = [(0, True), (0, True), (1, True), (1, True)]


def test_seeds_other_than_zero_replay_their_own_draws(tmp_path):
    """Reproducible runs at any --seed, not only the shipped one's 0."""
    trainer = make_trainer(tmp_path, seed=3, max_clicks=2, feedback_fraction=0.5)
    seen = record_forward(trainer)
    for _ in range(4):
        trainer.train_step(trainer._batch(0, trainer.step)[0])
    assert seen == GOLDEN_DRAWS_SEED_3


def test_progress_shows_by_default_on_the_main_process(tmp_path):
    torch.manual_seed(0)
    model = build_sam(CONFIG)
    groups = [{"params": list(model.mask_decoder.parameters()), "lr": 0.01}]
    data = synthetic_set(CONFIG.img_size, 2)
    trainer = Trainer(model, CONFIG, groups, data, data, tmp_path, LoopConfig(batch_size=2), Recorder())
    assert trainer.progress is True and trainer.device == torch.device("cpu")


def test_train_step_and_validation_pad_as_the_app_does(tmp_path):
    """Images that fill only part of the square (a portrait film) reach the model with the
    app's padding: 0 after normalising outside their region, not normalised black."""
    trainer = make_trainer(tmp_path)
    for data in (trainer.train_set, trainer.val_set):
        data.input_sizes[:, 1] = 40  # each image fills 64 x 40; the rest is black pixels
    seen: list[torch.Tensor] = []
    real = trainer.forward

    def recording(x, *args):
        seen.append(x.detach().clone())
        return real(x, *args)

    trainer.forward = recording
    trainer.train_step(np.arange(2))
    encoder = trainer.model.image_encoder
    inputs: list[torch.Tensor] = []
    hook = encoder.register_forward_hook(lambda _m, args, _out: inputs.append(args[0].detach().clone()))
    try:
        evaluate_set(trainer.model, CONFIG, trainer.val_set, batch_size=4)
    finally:
        hook.remove()
    for x in (seen[0], inputs[0]):
        assert x[..., :, 40:].abs().max() == 0
        assert x[..., :, :40].abs().amin() > 0  # the image itself is normalised as usual
