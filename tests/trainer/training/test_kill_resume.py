"""A training run SIGKILLed at random moments (several times, some of them in the middle of a
checkpoint or best-model write) resumes to the same result as a run never killed; between
kills, checkpoint.pt always loads, best/ is always a complete model folder and the registry
never lists an incomplete model.

Run ``pytest tests/trainer/training/test_kill_resume.py -s`` to see the summary line with the figures.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.models import load_model_folder
from trainer.training import CHECKPOINT, read_events

ROOT = Path(__file__).resolve().parents[3]
EPOCHS = 48  # long enough that no trial outlives the run before its kill (24 did, now and then)
KILLS = 6
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def train_command(data: Path, out: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "app.cli", "train", "base", "--arch", "tiny", "--data", str(data),
           "--val", str(data), "--out", str(out), "--epochs", str(EPOCHS), "--batch-size", "2",
           "--threads", "1"]
    return cmd + ["--resume"] if resume else cmd


def in_flight(run: Path) -> list[str]:
    """Temporary files of a write in progress (or of a writer that was killed)."""
    return sorted(p.name for p in run.iterdir() if p.name.startswith(".")) if run.is_dir() else []


def count_events(run: Path, kind: str) -> int:
    path = run / "events.jsonl"
    return sum(e["event"] == kind for e in read_events(path)) if path.is_file() else 0


def wait_until(condition, child: subprocess.Popen, timeout: float = 60.0, poll: float = 0.002) -> bool:
    """Poll ``condition`` until true; False when the child ended (finished) first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if child.poll() is not None:
            return False
        time.sleep(poll)
    raise AssertionError("the training process made no progress in time")


def check_run_folder(run: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """What a user (or the GUI) could open right after a kill must be complete."""
    from engine.models import list_models

    state = {"checkpoint": False, "best": False}
    checkpoint = run / CHECKPOINT
    if checkpoint.exists():
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
        assert {"model", "optimizer", "step", "history"} <= set(ckpt)
        assert len(ckpt["history"]["epochs"]) == ckpt["step"] // 4  # 8 images / batch 2
        state["checkpoint"] = True
    if (run / "best").exists():
        best = load_model_folder(run / "best")  # sha256 verified, every tensor fits
        assert best.meta["metrics"]["epoch"] >= 1
        state["best"] = True
    monkeypatch.setenv("LUNGSAM_MODELS", str(run))  # the run folder itself as a models folder
    listed = list_models()
    assert [e.name for e in listed] == (["best"] if state["best"] else [])
    for entry in listed:
        load_model_folder(entry.path)
    return state


def test_run_killed_at_random_moments_resumes_to_the_uninterrupted_result(
    small_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUNGSAM_RESOURCES", str(tmp_path / "no-resources"))
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    run = tmp_path / "runs" / "killed"
    start = time.monotonic()
    kills = during_write = resumed_from = 0
    for trial in range(KILLS):
        checkpoints_before = count_events(run, "checkpoint")
        child = subprocess.Popen(train_command(small_set, run, resume=trial > 0), cwd=ROOT, env=CHILD_ENV,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            if trial % 2 == 0:  # a random moment once this process has written a checkpoint
                alive = wait_until(lambda n=checkpoints_before: count_events(run, "checkpoint") > n, child)
                time.sleep(rng.uniform(0.0, 0.8))
            else:  # the moment a checkpoint or best-model write is in flight
                alive = wait_until(
                    lambda n=checkpoints_before: count_events(run, "checkpoint") > n and in_flight(run), child
                )
        finally:
            child.send_signal(signal.SIGKILL)
            _, err = child.communicate(timeout=30)
        assert alive and child.returncode == -signal.SIGKILL, err.decode()[-2000:]
        kills += 1
        during_write += bool(in_flight(run))
        state = check_run_folder(run, monkeypatch)
        assert state["checkpoint"], "every trial was killed after a checkpoint was written"

    assert not (run / "summary.json").exists(), "a killed run must not look finished"
    done = subprocess.run(train_command(small_set, run, resume=True), cwd=ROOT, env=CHILD_ENV,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    check_run_folder(run, monkeypatch)
    events = read_events(run / "events.jsonl")
    resumes = [e for e in events if e["event"] == "resumed"]
    resumed_from = len(resumes)
    assert resumed_from == KILLS and all(e["step"] > 0 for e in resumes)
    assert events[-1]["event"] == "done"
    assert in_flight(run) == [], "the finished run left temporary files behind"

    summary = json.loads((run / "summary.json").read_text())
    assert [e["epoch"] for e in summary["epochs"]] == list(range(1, EPOCHS + 1))
    best = load_model_folder(run / "best")
    assert best.meta["metrics"]["epoch"] == summary["best_epoch"]

    # The same run never killed: same per-epoch scores, same best model, same final weights.
    straight = tmp_path / "runs" / "straight"
    subprocess.run(train_command(small_set, straight, resume=False), cwd=ROOT, env=CHILD_ENV,
                   capture_output=True, timeout=300, check=True)
    reference = json.loads((straight / "summary.json").read_text())
    assert [e["val_score"] for e in summary["epochs"]] == pytest.approx(
        [e["val_score"] for e in reference["epochs"]], abs=1e-6
    )
    assert summary["best_epoch"] == reference["best_epoch"]
    final_a = torch.load(run / CHECKPOINT, weights_only=True)["model"]
    final_b = torch.load(straight / CHECKPOINT, weights_only=True)["model"]
    for key, value in final_b.items():
        torch.testing.assert_close(final_a[key], value, atol=1e-6, rtol=0)
    print(
        f"\nkill/resume (seed {seed}): {kills} SIGKILLs survived ({during_write} during a checkpoint "
        f"or best-model write), {resumed_from} resumes, {EPOCHS}/{EPOCHS} epochs, result equal to the "
        f"uninterrupted run, 0 corrupt files, {time.monotonic() - start:.1f} s"
    )


def test_resume_tidies_what_a_killed_writer_left(tmp_path: Path) -> None:
    """Temporary files are removed; a best/ caught between its two renames is put back."""
    from trainer.training import recover_run_folder

    run = tmp_path / "run"
    (run / ".best.old-0123abcd").mkdir(parents=True)
    (run / ".best.old-0123abcd" / "model.json").write_text("{}")
    (run / ".best.partial-89abcdef").mkdir()
    (run / ".checkpoint.pt.k3j4h5.tmp").write_bytes(b"half")
    (run / "checkpoint.pt").write_bytes(b"complete")
    (run / ".notes").write_text("a user's file")
    done = recover_run_folder(run)
    assert sorted(p.name for p in run.iterdir()) == [".notes", "best", "checkpoint.pt"]
    assert (run / "best" / "model.json").read_text() == "{}"
    assert len(done) == 3 and "restored best" in done
    (run / ".best.old-00000000").mkdir()  # best/ exists: a stale copy is removed, not restored
    assert recover_run_folder(run) == ["removed .best.old-00000000"]
    assert recover_run_folder(tmp_path / "missing") == []
