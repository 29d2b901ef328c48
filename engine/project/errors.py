"""Errors of the annotation project store (all :class:`LungSamError`, shown to the user as is)."""

from __future__ import annotations

from engine.errors import LungSamError


class ProjectStoreError(LungSamError):
    """The project folder or its database cannot do what was asked."""


class ProjectLockedError(ProjectStoreError):
    """Another window (process) has the folder open for writing; offer read-only."""

    def __init__(self, message: str, pid: int | None = None, host: str | None = None) -> None:
        super().__init__(message)
        self.pid, self.host = pid, host


class ReadOnlyProjectError(ProjectStoreError):
    """A write was attempted on a store opened read-only."""


class UnknownLabelError(ProjectStoreError):
    """A mask label outside :data:`LABELS`."""


class MaskShapeError(ProjectStoreError):
    """Masks that are not 2-D, differ in size, or differ from the image's earlier masks."""


class ImageNotInProjectError(ProjectStoreError):
    """An image (or annotation version) the project does not know."""


class UnreadableProjectError(ProjectStoreError):
    """The project cannot be opened for writing without risking what it holds; the window
    opens it read-only instead, and ``reason`` (one line) is what its banner says."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class DamagedProjectError(UnreadableProjectError):
    """The database is corrupt, not a database, of a foreign schema, or missing while masks
    remain: nothing in the folder may be changed until ``lungsam project check --repair``."""


class NewerProjectError(UnreadableProjectError):
    """Written by a newer LungSAM (a higher schema version): readable, never upgraded."""

    def __init__(self, message: str, reason: str, version: int) -> None:
        super().__init__(message, reason)
        self.version = version


class UnwritableProjectError(UnreadableProjectError):
    """The folder is on a read-only file system or lacks write permission."""


class DiskFullError(ProjectStoreError):
    """A save failed for space (ENOSPC, EFBIG, SQLITE_FULL); the previous version is kept."""
