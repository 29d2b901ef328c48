"""Child of test_disk_full.py: the real window saves under a file-size limit (RLIMIT_FSIZE,
writes fail with EFBIG as on a full disk), then with it lifted; prints one JSON line."""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time

os.environ["QT_QPA_PLATFORM"] = "offscreen"
sys.path.insert(0, sys.argv[2])
from PySide6.QtWidgets import QApplication, QMessageBox

app = QApplication([])
from app.gui.main_window import MainWindow  # noqa: E402
from tests.app.conftest import drag_box  # noqa: E402


def spin(cond) -> None:
    end = time.time() + 60
    while not cond():
        assert time.time() < end, "timeout"
        app.processEvents()
        time.sleep(0.005)


w = MainWindow(device="cpu", autosave_ms=10**8)
w.show()
w.open_paths([sys.argv[1]])
spin(lambda: w.image is not None and not w.model_loading and w.embedded_token == w.token)
drag_box(None, w, (10, 10, 100, 85))
spin(lambda: w.annotator.idle)
seen = {"first": w.save_current("corrected")}
session = w.annotator.session
before = session.snapshot(["lungs"])
session.masks["lungs"][:] = False
session.masks["lungs"][5:60, 5:60] = True  # a hand edit
session.commit("brush", before, manual=True)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.RLIM_INFINITY))
seen["while_full"] = [w.save_current(reason="autosave") for _ in range(3)]  # three autosaves
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
seen["dirty_while_full"] = session.dirty
seen["boxes"] = [b.text() for b in w._dialogs if isinstance(b, QMessageBox)]
seen["latest_while_full"] = w.project.store.latest_annotation(session.rel_path).version
seen["retry"] = w.save_current(reason="autosave")
seen["status"] = w.statusBar().currentMessage()
latest = w.project.store.latest_annotation(session.rel_path)
seen["equal"] = bool((latest.masks["lungs"] == session.masks["lungs"]).all())
seen["verify"] = w.project.store.verify()
w.close()
print("RESULT " + json.dumps(seen), flush=True)
