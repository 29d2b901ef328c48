"""Create the QApplication and the main window, open what was given on the command line."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.gui.main_window import MainWindow


def run(paths: list[str], model: str | None = None, device: str = "auto") -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LungSAM")
    app.setOrganizationName("LungSAM")
    window = MainWindow(model=model, device=device)
    window.show()
    if paths:
        window.open_paths([Path(p) for p in paths])
    # Ctrl+C in the terminal closes the window the normal way (autosave, threads stopped).
    signal.signal(signal.SIGINT, lambda *_: window.close())
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: None)  # lets Python run its signal handlers
    heartbeat.start(250)
    return int(app.exec())
