"""Helpers shared by the GUI-driving scripts in benchmarks/ and tools/.

Those scripts run the real MainWindow offscreen from a plain ``python`` process, without
pytest-qt's ``qtbot``, so they need their own way to wait for the GUI. They import this
module as ``tools.script_support`` after putting the repository root on ``sys.path``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtCore import QCoreApplication


def offscreen_gui_environment() -> None:
    """Offscreen Qt, and a throwaway GUI preferences file: a scripted window must not change
    the user's preferences (e.g. the mask style). Call before Qt is imported."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("LUNGSAM_CONFIG", os.path.join(tempfile.mkdtemp(prefix="lungsam-prefs-"), "gui.ini"))


def spin(
    app: QCoreApplication,
    condition: Callable[[], object],
    timeout: float = 120.0,
    poll_s: float = 0.001,
) -> None:
    """Process Qt events until ``condition()`` is true; TimeoutError after ``timeout`` seconds.

    ``poll_s`` is the sleep between rounds: short for timing-sensitive benchmarks, longer
    where the GUI thread should leave the CPU (and the GIL) to work running beside it.
    """
    end = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError("timed out waiting for the GUI")
        app.processEvents()
        time.sleep(poll_s)
