"""The PySide6 annotation GUI (`lungsam gui`). Importing this package imports Qt.

The main window and what belongs to all of it (menus, shortcuts, dialogs, status bar,
preferences, the Model menu) live here; :mod:`app.gui.annotate` holds annotating images and
:mod:`app.gui.trainer` the trainer pane. The entry point is :func:`app.gui.app.run`.
"""
