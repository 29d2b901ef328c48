"""A guard against reference-count bugs of the installed PySide6, applied when app.gui loads.

PySide6 6.12.0 on CPython before 3.12 returns ``None`` from every void method
(``setText``, ``update``, ``showMessage``, ``QTimer.start``...) and ``True`` from
``SignalInstance.emit`` without taking a reference, as if they were immortal (they are from
3.12 on). Each such call from Python drops one reference, and the process aborts with "Fatal
Python error: none_dealloc" (or "bool_dealloc") once the count reaches zero: a few minutes
into an annotation session (found by the long-session and 20,000-action monkey tests). The
leaks are measured once; where present, the object gets a reserve of 2**40 references.
``None`` and ``True`` are static objects that are never freed, so the reserve changes nothing
else (at a million calls per second it lasts 35 years).
"""

from __future__ import annotations

import ctypes
import sys

RESERVE = 1 << 40
PROBES = 8


def leaks() -> dict[str, bool]:
    """Which singletons a Python call into PySide6 loses a reference to (the bug)."""
    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal()

    probe = Probe()
    found = {}
    before = sys.getrefcount(True)
    for _ in range(PROBES):
        probe.ping.emit()
    found["True"] = sys.getrefcount(True) < before
    before = sys.getrefcount(None)
    for _ in range(PROBES):
        probe.setObjectName("probe")
    found["None"] = sys.getrefcount(None) < before
    return found


def add_reserve(obj: object) -> None:
    """Add :data:`RESERVE` to the reference count of a static singleton (CPython only)."""
    ctypes.c_ssize_t.from_address(id(obj)).value += RESERVE


def guard_refcounts() -> list[str]:
    """Reserve references where the bugs would abort the process; the names guarded."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return []  # None and True are immortal there: the leaks are harmless
    guarded = []
    for name, leaking in leaks().items():
        if leaking:
            add_reserve({"True": True, "None": None}[name])
            guarded.append(name)
    return guarded


GUARDED = guard_refcounts()
