"""A guard against a reference-count bug of the installed PySide6, applied when app.gui loads.

PySide6 6.12.0's ``SignalInstance.emit`` returns ``True`` without taking a reference to it, so
every emit made from Python drops one reference to ``True``. On CPython before 3.12 (where
``True`` is not immortal) the process then aborts with "Fatal Python error: bool_dealloc:
deallocating True or False" after a few thousand emits: a few hundred boxes into an
annotation day (found by tests/app/gui/annotate/test_long_session.py). The leak is measured
once; where present, ``True`` gets a reserve of 2**40 references. ``True`` is a static object
that is never freed, so the reserve changes nothing else (at a million emits per second it
lasts 35 years).
"""

from __future__ import annotations

import ctypes
import sys

RESERVE = 1 << 40


def emit_leaks_true() -> bool:
    """Whether emitting a signal from Python loses a reference to ``True`` (the PySide6 bug)."""
    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal()

    probe = Probe()
    before = sys.getrefcount(True)
    for _ in range(8):
        probe.ping.emit()
    return sys.getrefcount(True) < before


def guard_emit_refcount() -> bool:
    """Give ``True`` its reserve where the bug would abort the process; True when applied."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False  # True is immortal there: the leak is harmless
    if not emit_leaks_true():
        return False
    ctypes.c_ssize_t.from_address(id(True)).value += RESERVE
    return True


GUARDED = guard_emit_refcount()
