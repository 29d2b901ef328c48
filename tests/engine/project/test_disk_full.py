"""A save that fails for space keeps the previous version, says so, and the next save works:
simulated with a file-size limit (RLIMIT_FSIZE) in a child process, as the trainer's tests do."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from engine.project import check_project
from tests.engine.project.store_helpers import CHILD_ENV, REPO, image_bytes

CHILD = Path(__file__).with_name("disk_full_child.py")


def test_a_full_disk_keeps_the_previous_version_and_the_next_save_retries(tmp_path: Path) -> None:
    start = time.monotonic()
    root = tmp_path / "cxr"
    root.mkdir()
    (root / "a.png").write_bytes(image_bytes(1))
    limit = 4096  # the second version's PNGs are ~8 KiB each: every write of them fails
    done = subprocess.run([sys.executable, str(CHILD), str(root), str(limit)], cwd=REPO,
                          env=CHILD_ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["first"] == 1
    assert "the disk is full" in seen["error"] and "the previous version is kept" in seen["error"]
    assert seen["latest_while_full"] == 1
    assert seen["retry"] == 2 and seen["equal"] and seen["verify"] == []
    assert not list((root / ".lungsam").rglob("*.tmp"))  # no half-written file left
    assert check_project(root) == []
    print(f"\nfull disk (file size limit {limit} B): '{seen['error'][:60]}...', version 1 kept, "
          f"retry saved version 2, store verified, {time.monotonic() - start:.1f} s")
