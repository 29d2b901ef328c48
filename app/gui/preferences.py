"""Preferences that outlive a session, such as the mask style a radiologist works in.

A site annotates in one convention; asking again every time the window opens would be a trap
(a forgotten switch silently changes the masks). Stored as an INI file through QSettings:
``$LUNGSAM_CONFIG`` if set (tests), else ``$XDG_CONFIG_HOME/lungsam/gui.ini`` (default
``~/.config/lungsam/gui.ini``).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

MASK_STYLE = "mask_style"
BRUSH_RADIUS = "brush_radius"
OVERWRITE = "brush_overwrites_other_lung"  # "true": a lung's stroke takes the other lung's pixels
WINDOW_GEOMETRY = "window/geometry"
WINDOW_STATE = "window/state"  # dock and tool bar layout (splitter positions)


def preferences_path() -> Path:
    explicit = os.environ.get("LUNGSAM_CONFIG")
    if explicit:
        return Path(explicit)
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "lungsam" / "gui.ini"


def _settings() -> QSettings:
    return QSettings(str(preferences_path()), QSettings.Format.IniFormat)


def get_preference(key: str) -> str | None:
    value = _settings().value(key)
    return str(value) if value not in (None, "") else None


def get_flag(key: str) -> bool:
    return get_preference(key) == "true"


def set_flag(key: str, on: bool) -> None:
    set_preference(key, "true" if on else "false")


def get_bytes(key: str) -> bytes | None:
    """A Qt blob (window geometry/state), stored as hex so the INI file stays plain text."""
    value = get_preference(key)
    try:
        return bytes.fromhex(value) if value else None
    except ValueError:  # a hand-edited file: forget the layout rather than fail
        return None


def set_bytes(key: str, data: bytes) -> None:
    set_preference(key, bytes(data).hex())


def set_preference(key: str, value: str) -> None:
    settings = _settings()
    settings.setValue(key, value)
    settings.sync()  # written now: a killed window must not forget the choice
