"""`lungsam gui` without a display: one clear line and exit 2, not a Qt abort."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.cli.gui import NO_DISPLAY, display_missing

ROOT = Path(__file__).resolve().parents[3]


def test_gui_without_a_display_says_so_and_exits_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = str(ROOT)
    env["LUNGSAM_CONFIG"] = str(tmp_path / "gui.ini")
    done = subprocess.run([sys.executable, "-m", "app.cli", "gui", "--device", "cpu"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"lungsam: {NO_DISPLAY}"]
    assert "Traceback" not in done.stdout + done.stderr


def test_display_detection():
    assert display_missing({}, "linux")
    assert not display_missing({"DISPLAY": ":0"}, "linux")
    assert not display_missing({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not display_missing({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not display_missing({}, "darwin") and not display_missing({}, "win32")


def test_compare_takes_two_models_or_none(monkeypatch, capsys):
    """`--compare` alone opens the default pair (None, None: the twin vs the shipped INT8); one
    or three names are refused in one line before any window."""
    import app.gui.compare.window as window
    from app.cli import main

    opened = []
    monkeypatch.setattr(window, "run_compare", lambda a, b, paths, device: opened.append((a, b, paths)) or 0)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert main(["gui", "x.png", "--compare", "--device", "cpu"]) == 0
    assert main(["gui", "--compare", "A", "B", "--device", "cpu"]) == 0
    assert opened == [(None, None, ["x.png"]), ("A", "B", [])]
    assert main(["gui", "--compare", "A", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip() == (
        "lungsam: --compare takes two models (A B) or none (the default pair); put image paths before --compare")
