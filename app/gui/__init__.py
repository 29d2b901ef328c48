"""The PySide6 annotation GUI (`lungsam gui`). Importing this package imports Qt."""
