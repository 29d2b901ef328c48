"""The PySide6 annotation GUI (`lungsam gui`). Importing this package imports Qt.

The main window and what belongs to all of it (menus, shortcuts, dialogs, status bar,
preferences, the Model menu) live here; :mod:`app.gui.annotate` holds annotating images and
:mod:`app.gui.trainer` the trainer pane. The entry point is :func:`app.gui.app.run`. Importing the package applies
:mod:`app.gui.qt_guard` (a PySide6 reference-count bug that would abort a long session).
"""

from app.gui import qt_guard  # noqa: F401  (first: later imports may emit signals)
