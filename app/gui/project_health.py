"""What the window says about a project it could not fully trust: the banner (read-only and
why, the images with problems) and the per-image marks in the list.

A mixin of :class:`app.gui.main_window.MainWindow`; the problems themselves are found by
:mod:`engine.project` (health check, opening) and by the window while it loads images.
"""

from __future__ import annotations


class ProjectHealthView:
    """The banner and the list marks for ``self.project.problems``."""

    def _show_banner(self) -> None:
        """Why the project is read-only, and which images have problems (per image)."""
        project = self.project
        lines = []
        if project is not None and project.read_only:
            lines.append(f"Read-only: {project.read_only_reason}. Your edits in this window are not saved.")
        if project is not None and project.problems:
            items = sorted(project.problems.items())
            shown = "; ".join(f"{rel or 'project'}: {text}" for rel, text in items[:3])
            more = f" (and {len(items) - 3} more, marked in the image list)" if len(items) > 3 else ""
            lines.append(f"{len(items)} image{'s' if len(items) != 1 else ''} with problems: {shown}{more}."
                         " `lungsam project check` lists them all.")
        self.banner.setText("\n".join(lines))
        self.banner.setVisible(bool(lines))

    def _flag(self, rel: str, text: str) -> None:
        """A problem found while working: list mark and banner."""
        if self.project is not None and self.project.problems.get(rel) != text:
            self.project.flag(rel, text)
            self.image_list.model.set_problems(self.project.problems)
            self._show_banner()
