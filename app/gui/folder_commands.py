"""Tools > Segment folder: start the background job, save what it proposes, show progress.

A mixin of :class:`app.gui.main_window.MainWindow`. The job (:mod:`app.gui.annotate.folder_job`)
computes in its own thread; this side SAVES, on the GUI thread like every other save, and only
into an image that still has no annotation at all: a corrected or otherwise annotated image,
or the image the user is working on, is never touched. Results are kind "model" annotations
whose prompts hold the proposal (``prompts["auto"]``: boxes, quality, signals), so the review
queue's order survives a restart. The job is held while the user drags a box or a box's
handle, clicks, proposes or changes image, so the live path goes first.
"""

from __future__ import annotations

from PySide6.QtCore import QThread

from app.gui.annotate.folder_job import FolderJob, FolderProgress, FolderResult, FolderSummary
from app.gui.annotate.job_progress import JobProgress
from engine.errors import LungSamError
from engine.sam import styled_name


class FolderCommands:
    """The folder job's wiring, start, results and end."""

    def _install_folder_job(self) -> None:
        self.folder_job, self.folder_thread = FolderJob(), QThread(self)
        self.folder_thread.setObjectName("lungsam-folder")
        self.folder_job.moveToThread(self.folder_thread)
        self.folder_thread.start()
        self.job_progress = JobProgress()
        self.statusBar().insertPermanentWidget(0, self.job_progress)
        self._job_project = None
        self._job_model: tuple[str, str] | None = None
        self.job_skipped = 0  # results not saved because the image had a mask by then
        self.folder_job.result.connect(self._folder_result)
        self.folder_job.progress.connect(self._folder_progress)
        self.folder_job.finished.connect(self._folder_finished)
        self.job_progress.cancel_clicked.connect(self.cancel_folder_job)
        # The user's gestures hold the job (GUI-thread lambdas: hold() is thread-safe).
        hold = self.folder_job.hold
        for signal in (self.canvas.box_started, self.canvas.box_edit_started, self.image_shown):
            signal.connect(lambda *_: hold())
        self.canvas.box_dragged.connect(lambda *_: hold())
        self.canvas.box_edited.connect(lambda *_: hold())
        self.canvas.point_clicked.connect(lambda *_: hold())
        self.annotator.settled.connect(self._release_folder_job)
        self.worker.embedded.connect(self._release_folder_job)

    def _release_folder_job(self, *_args) -> None:
        if self.annotator.idle:
            self.folder_job.release()

    def on_segment_folder(self) -> None:
        project, info = self.project, self.model_info
        message = None
        if project is None:
            message = "open a folder first (File > Open folder)"
        elif project.read_only:
            message = "the project is open read-only: nothing can be saved"
        elif info is None:
            message = "no model loaded - choose one (Model menu)"
        elif self.folder_job.running:
            message = "already segmenting the folder (Cancel is in the status bar)"
        if message is not None:
            self.statusBar().showMessage(message, 6000)
            return
        self.save_current(reason="segment folder")
        session = self.annotator.session
        busy = project.records[self.index].rel_path if self.index >= 0 and session is not None and session.masks else None
        items = [(r.rel_path, project.root / r.rel_path) for r in project.records
                 if r.status == "new" and r.latest_version is None and r.rel_path != busy]
        if not items:
            self.statusBar().showMessage("nothing to segment: every image already has a mask", 6000)
            return
        self._job_project, self.job_skipped = project, 0
        self._job_model = (styled_name(info.name, self.annotator.style), info.model_hash)
        self.job_progress.begin(len(items))
        self.folder_job.start(info.model, info.device, items, self.annotator.style)

    def cancel_folder_job(self) -> None:
        if self.folder_job.running:
            self.folder_job.cancel()
            self.job_progress.cancel.setEnabled(False)
            self.statusBar().showMessage("cancelling: the image in hand finishes, nothing is half-written", 4000)

    def _folder_result(self, result: FolderResult) -> None:
        project = self.project
        if project is None or project is not self._job_project:
            return
        index = project.index_of(result.rel_path)
        if index is None:
            return
        if result.error is not None:
            project.unreadable[result.rel_path] = result.error
            self.image_list.model.refresh_row(index)
            return
        record = project.records[index]
        session = self.annotator.session if index == self.index else None
        working = session is not None and (bool(session.masks) or session.dirty or not self.annotator.idle)
        try:
            taken = record.status != "new" or record.latest_version is not None or bool(project.store.history(record.rel_path))
            if taken or working:
                self.job_skipped += 1
                return
            version = project.save(index, result.masks, "model", self._job_model, result.prompts,
                                   result.image_content)
        except LungSamError as exc:
            self.statusBar().showMessage(f"segment folder: {record.rel_path} not saved ({exc})", 8000)
            return
        project.qualities[result.rel_path] = result.quality
        self.image_list.model.update_record(index, project.records[index])
        self._update_counts()
        if session is not None:  # the open image gets its masks and editable boxes now
            session.restore(result.masks, result.prompts, False, version)
            session.model_name, session.model_hash = self._job_model
            self.annotator.redraw()

    def _folder_progress(self, progress: FolderProgress) -> None:
        self.job_progress.update_progress(progress.done, progress.total, progress.images_per_second,
                                          progress.seconds_left, progress.unreadable)

    def _folder_finished(self, summary: FolderSummary) -> None:
        self.job_progress.end()
        if self.project is None or self.project is not self._job_project:
            return
        unreadable = f", {summary.unreadable} unreadable (marked in the list)" if summary.unreadable else ""
        if summary.error:
            text = summary.error
        elif summary.cancelled:
            text = f"segment folder cancelled after {summary.done} of {summary.total} images{unreadable}"
        else:
            saved = summary.done - summary.unreadable - self.job_skipped
            skipped = f", {self.job_skipped} left alone (annotated meanwhile)" if self.job_skipped else ""
            text = f"segmented {saved} images in {summary.seconds:.1f} s{unreadable}{skipped}"
        if self.project.sort_mode == "doubtful":
            self.set_sort("doubtful")  # the new scores take their places
        self._update_counts()
        self.statusBar().showMessage(text + "; D opens the most doubtful", 10000)
