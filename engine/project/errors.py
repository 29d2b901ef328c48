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
