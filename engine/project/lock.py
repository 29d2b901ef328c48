"""One writer per project folder: an advisory ``flock`` on ``.lungsam/lock``.

The kernel drops the lock when its holder dies, so a crashed window never leaves a stale lock;
the file holds the holder's pid and host for the message the second window shows.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from engine.project.errors import ProjectLockedError, ProjectStoreError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock, SQLite still serialises
    fcntl = None  # type: ignore[assignment]


def acquire_lock(path: Path, root: Path) -> int | None:
    """Exclusive non-blocking flock; the kernel drops it when the holder dies (no stale locks)."""
    if fcntl is None:  # pragma: no cover
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ProjectStoreError(
            f"{root}: cannot open the project lock ({exc.strerror}); open the project read-only"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if not isinstance(exc, BlockingIOError):
            raise ProjectStoreError(f"{root}: cannot lock the project ({exc.strerror})") from exc
        raise _held_by_another(path, root) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    return fd


def _held_by_another(path: Path, root: Path) -> ProjectLockedError:
    """The error for a lock another window holds, naming its pid and host when known."""
    pid, host = lock_holder(path)
    return ProjectLockedError(
        f"{root} is open in another LungSAM window (pid {pid or '?'} on {host or '?'}); "
        "open it read-only or close the other window",
        pid,
        host,
    )


def probe_lock(path: Path, root: Path) -> int | None:
    """Take the lock of an existing lock file without writing to it (None: no lock file, so
    no writer): a damaged project is inspected under the lock yet left byte-identical.
    :class:`ProjectLockedError` when a live writer holds it."""
    if fcntl is None:  # pragma: no cover
        return None
    fd = None
    for flags in (os.O_RDWR, os.O_RDONLY):  # read-only: a read-only file system
        try:
            fd = os.open(path, flags)
            break
        except FileNotFoundError:
            return None
        except OSError:
            continue
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise _held_by_another(path, root) from None
    return fd


def claim_lock(fd: int, root: Path | None = None) -> None:
    """Record this process as the holder of a lock taken by :func:`probe_lock`."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    except OSError as exc:  # a lock file this user may not write
        raise ProjectStoreError(
            f"{root or 'the project'}: cannot write the project lock ({exc.strerror}); "
            "open the project read-only"
        ) from exc


def lock_holder(path: Path) -> tuple[int | None, str | None]:
    try:
        parts = path.read_text().split()
        return int(parts[0]), (parts[1] if len(parts) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None, None


def release_lock(fd: int | None) -> None:
    if fd is not None:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
