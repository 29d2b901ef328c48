"""Child of test_disk_full.py: saves under a file-size limit (RLIMIT_FSIZE, as a full disk
fails writes: EFBIG), then with the limit lifted; prints one JSON line of what it saw."""

from __future__ import annotations

import json
import resource
import signal
import sys
from pathlib import Path

import numpy as np

from engine.project import DiskFullError, ProjectStore

root, limit = Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
first = {"lungs": rng.random((64, 64)) > 0.5}
second = {"lungs": rng.random((256, 256)) > 0.5, "right lung": rng.random((256, 256)) > 0.5}
seen: dict = {}
with ProjectStore.open(root) as store:
    seen["first"] = store.save_annotation("a.png", {"lungs": np.pad(first["lungs"], ((0, 192), (0, 192)))}, "model")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        store.save_annotation("a.png", second, "corrected")
    except DiskFullError as exc:
        seen["error"] = str(exc)
    seen["latest_while_full"] = store.latest_annotation("a.png").version
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    seen["retry"] = store.save_annotation("a.png", second, "corrected")
    latest = store.latest_annotation("a.png")
    seen["equal"] = all(np.array_equal(latest.masks[k], v) for k, v in second.items())
    seen["verify"] = store.verify()
print(json.dumps(seen))
