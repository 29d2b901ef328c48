"""Full disk while annotating (file-size limit in a child window, as the trainer tests do):
the failed save keeps the previous version, the user is told once, and the next save retries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from engine.project import check_project

CHILD = Path(__file__).with_name("disk_full_child.py")
REPO = Path(__file__).resolve().parents[4]


def test_a_full_disk_tells_the_user_keeps_the_last_version_and_retries(gui_model, synthetic_folder):
    start = time.monotonic()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(CHILD), str(synthetic_folder), str(REPO)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    seen = json.loads(lines[-1][len("RESULT "):])
    assert seen["first"] == 1
    assert seen["while_full"] == [None, None, None] and seen["dirty_while_full"]
    full = [text for text in seen["boxes"] if "disk is full" in text]
    assert len(full) == 1, seen["boxes"]  # told once, not at every autosave
    assert "the previous version is kept" in full[0]
    assert seen["latest_while_full"] == 1
    assert seen["retry"] == 2 and seen["equal"] and seen["verify"] == []
    assert seen["status"].startswith("saved again")
    assert check_project(synthetic_folder) == []
    print(f"\nGUI full disk: 3 autosaves refused with one message ('{full[0][:70]}...'), version 1 kept, "
          f"the next save wrote version 2, {time.monotonic() - start:.1f} s")
