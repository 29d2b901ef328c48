"""Regression: PySide6 6.12.0 drops a reference to True on every emit from Python, which
aborts CPython < 3.12 ("Fatal Python error: bool_dealloc") a few hundred boxes into a session.
Importing app.gui must make a long run of emits survivable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
EMITS = 200_000
CHILD = f"""
import sys
{{guard}}
from PySide6.QtCore import QCoreApplication, QObject, Signal
app = QCoreApplication([])
class Canvas(QObject):
    box_dragged = Signal(object, bool)
canvas = Canvas()
canvas.box_dragged.connect(lambda box, final: None)
for i in range({EMITS}):
    canvas.box_dragged.emit((1.0, 2.0, 3.0, 4.0), i % 2 == 0)
print("survived", flush=True)
"""


def run_child(guard: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD.format(guard=guard)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen",
                                                       "PATH": "/usr/bin:/bin"})


def test_a_long_run_of_signal_emits_does_not_abort_the_window():
    done = run_child("import app.gui")
    assert done.returncode == 0 and "survived" in done.stdout, done.stderr[-2000:]
    print(f"\n{EMITS} emits with app.gui imported: survived")


def test_without_the_guard_the_bug_aborts_where_it_exists():
    from app.gui import qt_guard

    if not qt_guard.GUARDED:
        pytest.skip("this PySide6/Python does not have the emit reference leak")
    done = run_child("")
    assert done.returncode != 0 and "bool_dealloc" in done.stderr  # the guard is what saves us
