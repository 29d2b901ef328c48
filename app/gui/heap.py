"""Give freed heap memory back to the operating system when the user moves to another image.

Why it exists: each image change frees tens of MiB of pixels, masks and PNG buffers that two
threads (the GUI and the loader) allocated, and glibc keeps such freed chunks in per-thread
arenas: a long session's RSS then climbed by hundreds of MiB without any object leaking
(tests/app/gui/annotate/test_long_session.py). ``malloc_trim(0)`` returns them; elsewhere than
glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

_trim: Callable[[int], int] | None = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _trim = _libc.malloc_trim
except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without it)
    _trim = None


def release_freed_memory() -> bool:
    """Return freed heap pages to the OS; True when the C library could."""
    return bool(_trim(0)) if _trim is not None else False
