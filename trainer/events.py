"""The job/event protocol: one JSON object per line, read by the GUI's trainer pane.

Every event has ``event`` (start, step, epoch, checkpoint, rank, warning, done, failed),
``time`` (unix seconds) and ``stage``; the rest depends on the event (see README).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any


class EventWriter:
    """Writes events to a file, to stdout (``-``) or nowhere; flushes every line."""

    def __init__(self, target: str | Path | None, stage: str = "", enabled: bool = True) -> None:
        self.stage = stage
        self._handle: IO[str] | None = None
        self._owned = False
        if target is None or not enabled:
            return
        if str(target) == "-":
            self._handle = sys.stdout
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(target, "a", encoding="utf-8")  # noqa: SIM115
            self._owned = True

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"event": event, "time": round(time.time(), 3), "stage": self.stage, **fields}
        if self._handle is not None:
            self._handle.write(json.dumps(record, default=_jsonable) + "\n")
            self._handle.flush()
        return record

    def close(self) -> None:
        if self._owned and self._handle is not None:
            self._handle.close()
        self._handle = None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All complete events of a file (a half-written last line is ignored)."""
    events = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
