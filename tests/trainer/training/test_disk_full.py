"""A disk that fills up during training: the run stops with exit status 2 and one clear line,
records a ``failed`` event saying so, leaves no temporary files, and the earlier results (the
last checkpoint and the best model) stay intact; resuming once there is space finishes it.

Two ways to fill the disk: a per-process file size limit (RLIMIT_FSIZE, works everywhere) and,
where this process may mount one (root), a small tmpfs that another program fills mid-run.

Run ``pytest tests/trainer/training/test_disk_full.py -s`` to see the summary lines.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from engine.models import load_model_folder
from trainer.training import CHECKPOINT, read_events

ROOT = Path(__file__).resolve().parents[3]
EPOCHS = 12
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def train_command(data: Path, out: Path, resume: bool = True) -> list[str]:
    cmd = [sys.executable, "-m", "app.cli", "train", "base", "--arch", "tiny", "--data", str(data),
           "--val", str(data), "--out", str(out), "--epochs", str(EPOCHS), "--batch-size", "2",
           "--threads", "1", "--cache-dir", str(out.parent / "cache")]
    return cmd + ["--resume"] if resume else cmd


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(run: Path) -> dict[str, str]:
    """sha256 of the results a user keeps: the checkpoint and the best model's files."""
    files = [run / CHECKPOINT, *sorted((run / "best").iterdir())]
    return {str(p.relative_to(run)): digest(p) for p in files}


def count_events(run: Path, kind: str) -> int:
    path = run / "events.jsonl"
    return sum(e["event"] == kind for e in read_events(path)) if path.is_file() else 0


def wait_for(condition, child: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert child.poll() is None, "the training process ended before the expected moment"
        assert time.monotonic() < deadline, "the training process made no progress in time"
        time.sleep(0.005)


def start_and_stop_after_first_checkpoint(data: Path, run: Path) -> None:
    """An interrupted run: one epoch done (checkpoint + best model), then killed."""
    child = subprocess.Popen(train_command(data, run, resume=False), cwd=ROOT, env=CHILD_ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: count_events(run, "checkpoint") >= 1, child)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)


def assert_failed_cleanly(done: subprocess.CompletedProcess, run: Path, before: dict[str, str] | None) -> str:
    """Exit 2, one error line about the disk, a failed event, no temporary files, results intact."""
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.startswith("lungsam")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert errors[0].startswith("lungsam: error: the disk is full") and "earlier results are kept" in errors[0]
    failed = [e for e in read_events(run / "events.jsonl") if e["event"] == "failed"]
    assert len(failed) == 1 and failed[0]["reason"].startswith("the disk is full")
    leftovers = [p.name for p in run.iterdir() if p.name.startswith(".")]
    assert leftovers == [], f"temporary files left after the failure: {leftovers}"
    assert not (run / "summary.json").exists()
    ckpt = torch.load(run / CHECKPOINT, map_location="cpu", weights_only=True)
    assert ckpt["step"] >= 4 and len(ckpt["history"]["epochs"]) == ckpt["step"] // 4
    best = load_model_folder(run / "best")
    assert best.meta["metrics"]["epoch"] <= len(ckpt["history"]["epochs"]) + 1
    if before is not None:
        assert snapshot(run) == before, "an earlier result changed although no write succeeded"
    return errors[0]


def resume_to_the_end(data: Path, run: Path) -> dict:
    done = subprocess.run(train_command(data, run), cwd=ROOT, env=CHILD_ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert [e["epoch"] for e in summary["epochs"]] == list(range(1, EPOCHS + 1))
    load_model_folder(run / "best")
    return summary


def test_file_size_limit_fails_with_a_message_and_keeps_earlier_results(small_set: Path, tmp_path: Path) -> None:
    """RLIMIT_FSIZE below the checkpoint's size: the resumed run's first checkpoint (or best
    model) write fails with EFBIG, as on a full disk."""
    start = time.monotonic()
    run = tmp_path / "runs" / "limited"
    start_and_stop_after_first_checkpoint(small_set, run)
    before = snapshot(run)
    limit = (run / "best" / "weights.safetensors").stat().st_size // 2  # every model write fails

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(train_command(small_set, run), cwd=ROOT, env=CHILD_ENV, capture_output=True,
                          text=True, timeout=300, preexec_fn=limit_file_size)
    message = assert_failed_cleanly(done, run, before)
    summary = resume_to_the_end(small_set, run)
    print(
        f"\ndisk full (file size limit {limit >> 10} KiB): exit 2, '{message[:70]}...', "
        f"checkpoint and best model unchanged, resumed to {len(summary['epochs'])}/{EPOCHS} epochs, "
        f"{time.monotonic() - start:.1f} s"
    )


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A 220 MiB tmpfs (the trainer wants 200 MiB free to start), or skip where mounting is not
    allowed (not root, no CAP_SYS_ADMIN)."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=220m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(disk: Path, leave: int) -> int:
    """Write a filler file until only ``leave`` bytes stay free; returns its size."""
    stat = os.statvfs(disk)
    size = max(0, stat.f_bavail * stat.f_frsize - leave)
    written = 0
    chunk = b"\0" * (1 << 20)
    with open(disk / "filler", "wb") as handle:
        try:
            while written < size:
                written += handle.write(chunk[: min(len(chunk), size - written)])
        except OSError as exc:  # the trainer took some space meanwhile: the disk is full anyway
            assert exc.errno == errno.ENOSPC
    return written


def test_tmpfs_filling_up_mid_run_fails_with_a_message_and_keeps_earlier_results(
    small_set: Path, small_tmpfs: Path
) -> None:
    """Another program fills the disk right after the first checkpoint; the next checkpoint or
    best-model write fails with ENOSPC."""
    start = time.monotonic()
    run = small_tmpfs / "run"
    child = subprocess.Popen(train_command(small_set, run, resume=False), cwd=ROOT, env=CHILD_ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: count_events(run, "checkpoint") >= 1, child)
        filled = fill(small_tmpfs, leave=64 << 10)  # room for progress events, not for a model
        _, err = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    done = subprocess.CompletedProcess(child.args, child.returncode, "", err)
    message = assert_failed_cleanly(done, run, None)
    (small_tmpfs / "filler").unlink()
    summary = resume_to_the_end(small_set, run)
    print(
        f"\ndisk full (tmpfs filled with {filled >> 20} MiB mid-run): exit 2, '{message[:70]}...', "
        f"checkpoint and best model load, resumed to {len(summary['epochs'])}/{EPOCHS} epochs, "
        f"{time.monotonic() - start:.1f} s"
    )
