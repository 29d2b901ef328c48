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
    """Writes events to files and/or stdout (``-``); flushes every line.

    The run folder always keeps its own ``events.jsonl`` (for reports) beside whatever
    target the caller asked for (the GUI reads stdout or a file).
    """

    def __init__(self, *targets: str | Path | None, stage: str = "", enabled: bool = True) -> None:
        self.stage = stage
        self._handles: list[tuple[IO[str], bool]] = []
        if not enabled:
            return
        for target in dict.fromkeys(str(t) for t in targets if t is not None):
            if target == "-":
                self._handles.append((sys.stdout, False))
            else:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                self._handles.append((open(target, "a", encoding="utf-8"), True))

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"event": event, "time": round(time.time(), 3), "stage": self.stage, **fields}
        line = json.dumps(record, default=_jsonable) + "\n"
        for handle, _ in self._handles:
            try:
                handle.write(line)
                handle.flush()
            except OSError:
                pass  # a full disk must not turn a progress message into a crash
        return record

    def close(self) -> None:
        for handle, owned in self._handles:
            if owned:
                handle.close()
        self._handles = []


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
