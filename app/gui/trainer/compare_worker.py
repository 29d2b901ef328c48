"""The held-back comparison off the GUI thread: a QObject living in a QThread that calls
:meth:`trainer.finetune.FineTune.compare` (the GUI thread never runs a model)."""

from __future__ import annotations

import traceback
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from engine.errors import LungSamError


class ComparisonWorker(QObject):
    """``run({"finetune", "current", "device", "style"})`` emits ``done(summary)`` or ``failed``."""

    progress = Signal(int, int)
    done = Signal(object)  # summary dict
    failed = Signal(str)

    @Slot(object)
    def run(self, request: dict[str, Any]) -> None:
        try:
            summary = request["finetune"].compare(request["current"], request.get("device", "cpu"),
                                                  lambda d, t: self.progress.emit(d, t), request.get("style"))
        except LungSamError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # shown in the pane, never kills the GUI
            traceback.print_exc()
            self.failed.emit(f"the comparison failed: {type(exc).__name__}: {exc}")
            return
        self.done.emit(summary)
