"""LungSAM entry points: the `lungsam` CLI and the PySide6 GUI."""
