"""Zero-click on this image and the review queue: keys A, D, Y and the image list's sort.

A mixin of :class:`app.gui.main_window.MainWindow`, as :mod:`app.gui.commands` is: the window
module keeps the wiring, this one the review loop. The loop: segment the folder (or press A
on an image), sort the list "most doubtful first", then D opens the unreviewed model mask with
the lowest quality score and Y accepts what is drawn (saved as "corrected", the clinician's
final) and opens the next doubtful one; a wrong mask is fixed first (drag its box's corner or
edge, or brush), then Y.
"""

from __future__ import annotations

from app.gui.annotate.project import Project
from app.gui.annotate.review_queue import next_doubtful


class ReviewCommands:
    """Handlers of the zero-click and review actions in :mod:`app.gui.shortcuts`."""

    def _install_review(self) -> None:
        self.image_list.sort_chosen.connect(self.set_sort)
        self.annotator.proposal_scored.connect(self._proposal_scored)
        self.image_shown.connect(self._show_review_note)
        self._review_note: str | None = None  # shown once the image D opened is on screen

    def _show_review_note(self, _row: int) -> None:
        if self._review_note:
            self.statusBar().showMessage(self._review_note, 8000)
            self._review_note = None

    def _project_opened(self, project: Project) -> None:
        """A new project shows in the current sort order, with its badges."""
        self.cancel_folder_job()
        project.sort(self.image_list.sort.currentData() or "name")
        self.image_list.model.qualities = project.qualities
        self.image_list.model.unreadable = project.unreadable

    # -- zero-click on this image ----------------------------------------------------------
    def on_propose(self) -> None:
        self.folder_job.hold()
        self.annotator.propose()

    def _proposal_scored(self, _quality: float) -> None:
        """Save the proposal at once, so its badge (and the queue) has it."""
        if self.project is not None and self.index >= 0:
            self.save_current(reason="propose")

    def _quality_saved(self, rel: str, kind: str, auto: dict | None) -> None:
        """Keep the badges as the store has them: a model mask saved without a score (a
        proposed box edited since) loses its badge."""
        if self.project is None or kind != "model":
            return
        if auto is not None:
            self.project.qualities[rel] = float(auto["quality"])
        else:
            self.project.qualities.pop(rel, None)

    # -- review queue ----------------------------------------------------------------------
    def on_next_doubtful(self) -> None:
        if self.project is None:
            return
        self.save_current(reason="image change")  # a status it changes counts now
        row = next_doubtful(self.project.records, self.project.qualities, self.index)
        if row is None:
            self.statusBar().showMessage("review queue empty: no unreviewed model masks left", 6000)
            return
        quality = self.project.qualities.get(self.project.records[row].rel_path)
        left = sum(r.status == "model" for r in self.project.records)
        score = f"quality {quality:.3f}" if quality is not None else "no quality score"
        self._review_note = f"most doubtful of {left} unreviewed: {score} (Y accepts; if it is wrong, fix it first)"
        self.go_to(row)

    def on_accept_doubtful(self) -> None:
        """Y: the mask is right as drawn; saved as "corrected" with no edit, then the next."""
        session = self.annotator.session
        if session is None or not session.masks:
            self.statusBar().showMessage("nothing to accept: no mask yet (A proposes one)", 4000)
            return
        version = self.save_current("corrected", reason="accepted")
        if version is None:
            return
        self.on_next_doubtful()
        if self.annotator.session is session:  # queue empty: say what was saved
            self.statusBar().showMessage(f"accepted (version {version}); review queue empty", 6000)

    def on_sort_doubtful(self, checked: bool) -> None:
        self.set_sort("doubtful" if checked else "name")

    def set_sort(self, mode: str) -> None:
        """Order the image list (and N / P) by ``mode``; the current image stays current."""
        self.image_list.set_sort(mode)
        self.actions["sort_doubtful"].setChecked(mode == "doubtful")
        if self.project is None:
            return
        rel = self.project.records[self.index].rel_path if self.index >= 0 else None
        self.project.sort(mode)
        self.image_list.set_records(self.project.records)
        if rel is not None:
            self.index = self.project.index_of(rel)
            self.image_list.set_current(self.index)
