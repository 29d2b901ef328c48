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
