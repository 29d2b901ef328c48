"""The annotation window: image list, canvas, label panel, menus, status bar, autosave.

Threads: the model worker (embeddings, box/point predictions, proposals, model loading), the
image loader (decoding, prefetching the neighbours' pixels and embeddings) and the folder job
(zero-click on every new image, :mod:`app.gui.folder_commands`) each live in a QThread; this
window only routes signals, draws and saves. Saving is on the GUI thread because it is
small (PNG masks + one SQLite transaction) and must be ordered with the edits.

Autosave: every 5 s when something changed, on image change and on close; a crash or kill
loses at most those 5 s. Memory caps: see :data:`app.gui.dialogs.MEMORY_CAPS`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.actions import build_menus
from app.gui.annotate import (
    Annotator,
    Canvas,
    ImageList,
    ImageLoader,
    ImageSession,
    LabelsPanel,
    ModelInfo,
    ModelWorker,
    Project,
    Windower,
    current_auto,
)
from app.gui.commands import WindowCommands
from app.gui.export_dialog import ExportCommands
from app.gui.folder_commands import FolderCommands
from app.gui.heap import release_freed_memory
from app.gui.layout_memory import remember_layout, restore_layout
from app.gui.model_commands import ModelCommands
from app.gui.model_menu import ModelMenu
from app.gui.project_health import ProjectHealthView
from app.gui.review_commands import ReviewCommands
from app.gui.status import StatusFields
from app.gui.toolbar import build_toolbar
from app.gui.trainer import install_trainer_dock
from engine.errors import LungSamError
from engine.imaging import LoadedImage
from engine.predict import EmbeddingCache
from engine.project import label_areas

EMBED_CACHE_BYTES = 512 << 20


class MainWindow(ModelCommands, FolderCommands, ReviewCommands, ExportCommands, ProjectHealthView, WindowCommands,
                 QMainWindow):
    AUTOSAVE_MS = 5000
    AREAS_MS = 100
    saved = Signal(str, int)  # rel_path, version
    image_shown = Signal(int)  # row
    export_done = Signal(object)  # dict of written paths, or an exception

    def __init__(self, model: str | None = None, device: str = "auto", autosave_ms: int | None = None) -> None:
        super().__init__()
        self.setWindowTitle("LungSAM")
        self.cache = EmbeddingCache(max_bytes=EMBED_CACHE_BYTES)
        self.worker, self.worker_thread = ModelWorker(self.cache), QThread(self)
        self.loader, self.loader_thread = ImageLoader(self.cache), QThread(self)
        for obj, thread, name in ((self.worker, self.worker_thread, "lungsam-model"), (self.loader, self.loader_thread, "lungsam-loader")):
            thread.setObjectName(name)
            obj.moveToThread(thread)
            thread.start()

        self.canvas = Canvas()
        self.banner = QLabel("")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background: #7a5b00; color: white; padding: 6px;")
        self.banner.setVisible(False)
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.banner)
        column.addWidget(self.canvas, 1)
        self.setCentralWidget(central)
        self.image_list = ImageList()
        self.panel = LabelsPanel()
        for widget, title, area in ((self.image_list, "Images", Qt.DockWidgetArea.LeftDockWidgetArea), (self.panel, "Labels", Qt.DockWidgetArea.RightDockWidgetArea)):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock-{title}")
            dock.setWidget(widget)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
            self.addDockWidget(area, dock)
        self.status = StatusFields(self.statusBar())
        self.actions, self.menus = build_menus(self)
        self.toolbar = build_toolbar(self, self.actions)
        self._add_window_presets()
        self.model_menu = ModelMenu(self.menus["Model"], self)
        self.annotator = Annotator(self.canvas, self.worker)
        self.canvas.set_brush_radius(self.panel.brush.value())  # remembered from last time

        self.project: Project | None = None
        self.index = -1
        self.token = 0
        self.embedded_token = -1
        self.image: LoadedImage | None = None
        self.windower: Windower | None = None
        self.window_level = None
        self._wl_start = None
        self._preset = 0
        self.model_info: ModelInfo | None = None
        self.model_loading = False
        self.model_spec = model
        self.device = device
        self._explicit_model = model is not None
        self._pending_model: tuple[str | None, str] | None = None
        self._dialogs: list[QWidget] = []
        self._save_failing = False

        self._connect()
        self._install_folder_job()
        self._install_review()
        self.trainer_pane, self.trainer_dock = install_trainer_dock(self)
        self.autosave = QTimer(self)
        self.autosave.setInterval(autosave_ms or self.AUTOSAVE_MS)
        self.autosave.timeout.connect(lambda: self.save_current(reason="autosave"))
        self.autosave.start()
        self._wl_timer = QTimer(self, singleShot=True, interval=0)
        self._wl_timer.timeout.connect(self._apply_window)
        # Areas follow the masks at most every AREAS_MS while a box is dragged (latest wins).
        self._areas_timer = QTimer(self, singleShot=True, interval=self.AREAS_MS)
        self._areas_timer.timeout.connect(self.show_areas)
        self.on_label(self.panel.label)
        self.actions["tool_box"].setChecked(True)
        self.resize(1400, 900)
        restore_layout(self)
        self.load_model(model, device)

    def _connect(self) -> None:
        w, a = self.worker, self.annotator
        w.model_ready.connect(self._model_ready)
        w.model_failed.connect(self._model_failed)
        w.embedded.connect(self._embedded)
        # Worker signals must reach methods of GUI-thread QObjects (queued), never lambdas or
        # plain objects, which PySide would call in the worker thread.
        w.embed_failed.connect(self._embed_failed)
        w.busy.connect(self._worker_busy)
        self.loader.loaded.connect(self._loaded)
        self.loader.failed.connect(self._load_failed)
        a.latency.connect(lambda total, _model: self.status.set_latency(total))
        a.message.connect(lambda text: self.statusBar().showMessage(text, 4000))
        a.changed.connect(self._masks_changed)
        self.image_list.image_chosen.connect(self.go_to)
        self.panel.label_chosen.connect(self.on_label)
        self.panel.opacity_changed.connect(self._set_opacity)
        self.panel.outline_toggled.connect(self._set_outline)
        self.panel.brush_changed.connect(self.canvas.set_brush_radius)
        self.panel.style_chosen.connect(self.annotator.set_style)
        self.canvas.window_dragged.connect(self._window_dragged)
        self.canvas.cursor_moved.connect(lambda xy: self.status.set_position(self.image, xy))
        self.model_menu.model_chosen.connect(lambda spec: self.load_model(spec, self.device))
        self.model_menu.device_chosen.connect(lambda dev: self.load_model(self.model_spec, dev))
        self.export_done.connect(self._export_finished)

    # -- project and navigation ------------------------------------------------------------
    def open_paths(self, paths: list[str | Path]) -> bool:
        self.save_current(reason="open")
        try:
            project = Project.open(paths)
        except LungSamError as exc:
            self.show_error(str(exc))
            return False
        if self.project is not None:
            self.project.close()
        self.project = project
        self._project_opened(project)
        self._show_banner()
        if project.read_only:
            self.show_error(f"Opened read-only. {project.read_only_reason}", modal_info=True)
        self.setWindowTitle(f"LungSAM - {project.root}" + (" [read-only]" if project.read_only else ""))
        self.image_list.set_records(project.records)
        self.image_list.model.set_problems(project.problems)
        if project.renamed:
            moves = ", ".join(f"{old} -> {new}" for old, new in project.renamed[:3])
            self.statusBar().showMessage(f"renamed images found by their content, masks kept: {moves}", 10000)
        self._update_counts()
        self.trainer_pane.set_project(project)
        try:
            self.model_menu.project_models = project.store.list_model_versions()
            active = project.store.active_model()
        except LungSamError:
            active = None
        if active and not self._explicit_model and Path(active["path"]).exists():
            self.load_model(active["path"], self.device)
        start = project.last_image()
        if start is None:
            start = next((i for i, r in enumerate(project.records) if r.status in ("new", "model")), 0)
        self.index = -1
        self.go_to(start)
        return True

    def go_to(self, index: int) -> None:
        if self.project is None or not 0 <= index < len(self.project.records) or index == self.index:
            return
        self.save_current(reason="image change")
        self.index = index
        self.token += 1
        self.image = None
        self.annotator.start(None, self.token)
        self.show_areas()
        self.canvas.set_image(None)
        release_freed_memory()  # the previous image's pixels and masks, back to the OS
        self.image_list.set_current(index)
        self.loader.request(self.token, self.project.path(index))
        self.project.remember(index)

    def _loaded(self, token: int, image: LoadedImage) -> None:
        if token != self.token or self.project is None:
            return
        self.image = image
        record = self.project.records[self.index]
        session = ImageSession(record.rel_path, (image.height, image.width))
        try:
            annotation = self.project.latest(self.index)
        except LungSamError as exc:
            annotation = None
            self._flag(record.rel_path, str(exc))
            self.show_error(str(exc))
        if annotation is not None and image.source is not None and annotation.image_sha256 not in (None, image.source[0]):
            # the file was replaced since these masks were drawn: never lay them on the new image
            self._flag(record.rel_path, f"the image file changed since version {annotation.version} was saved; "
                       "its masks are kept but not shown on the new image")
            self.statusBar().showMessage(self.project.problems[record.rel_path], 10000)
            annotation = None
        if annotation is not None and all(m.shape == session.shape for m in annotation.masks.values()):
            session.restore(annotation.masks, annotation.prompts, annotation.kind == "corrected", annotation.version)
            session.model_name, session.model_hash = annotation.model_name, annotation.model_hash
        self.canvas.set_image(image.pixels)
        self.windower = Windower(image)  # display only: the model keeps image.pixels
        self.window_level = self.windower.file_window
        self.annotator.start(session, token)
        self.show_areas()
        if self.model_info is not None:
            self.worker.post_embed(token, image.pixels)
        rows = [self.index + 1, self.index - 1]
        self.loader.prefetch([self.project.path(r) for r in rows if 0 <= r < len(self.project.records)])
        name = Path(record.rel_path).name
        window = f", window {image.window.center:g}/{image.window.width:g}" if image.window else ""
        self.statusBar().showMessage(f"{name}: {image.width} x {image.height} {image.format}{window}", 5000)
        self.image_shown.emit(self.index)

    def _masks_changed(self) -> None:
        if not self._areas_timer.isActive():
            self._areas_timer.start()

    def show_areas(self) -> None:
        """The current masks' areas in the labels panel: cm² with the image's pixel spacing,
        px² without (np.count_nonzero per label: cheap enough for the GUI thread)."""
        session = self.annotator.session
        if session is None or self.image is None:
            self.panel.set_areas(None)
            return
        self.panel.set_areas(label_areas(session.masks, self.image.spacing))

    def _load_failed(self, token: int, path: str, message: str) -> None:
        if token == self.token:
            if self.project is not None and 0 <= self.index < len(self.project.records):
                self._flag(self.project.records[self.index].rel_path, message)
            self.show_error(message)

    def _update_counts(self) -> None:
        if self.project is not None:
            self.image_list.set_counts(self.project.counts())

    def _refresh_row(self) -> None:
        if self.project is not None and self.index >= 0:
            self.image_list.model.update_record(self.index, self.project.records[self.index])
            self._update_counts()

    # -- saving ----------------------------------------------------------------------------
    def save_current(self, kind: str | None = None, reason: str = "autosave") -> int | None:
        """Save the current masks as a new version; ``kind`` None = autosave when changed."""
        session = self.annotator.session
        if session is None or self.project is None or self.project.read_only:
            return None
        if kind is None:
            if not session.dirty:
                return None
            kind = "corrected" if session.edited else "model"
        elif not session.dirty and session.saved_kind == kind:
            return session.saved_version  # accepting twice makes no new version
        masks = dict(session.masks)
        if not masks:
            if session.saved_version is None:
                if reason == "accepted":
                    self.statusBar().showMessage("nothing to save: no mask yet", 4000)
                session.dirty = False
                return None
            # everything undone or cleared after a save: that empty state is the newest version,
            # or reopening the image would bring back what the user took away
            masks = {"lungs": np.zeros(session.shape, bool)}
        model = (session.model_name, session.model_hash)
        prompts = {"labels": session.prompt_state(), "reason": reason}
        auto = current_auto(session)
        if auto is not None:
            prompts["auto"] = auto
        source = self.image.source if self.image is not None else None
        had_problem = session.rel_path in self.project.problems
        try:
            version = self.project.save(self.index, masks, kind, model, prompts, source)
        except LungSamError as exc:
            if not self._save_failing:  # one message, not one every 5 s
                self.show_error(f"could not save: {exc}")
            self._save_failing = True
            return None
        if self._save_failing:
            self.statusBar().showMessage(f"saved again (version {version})", 5000)
        self._save_failing = False
        self._quality_saved(session.rel_path, kind, auto)
        if had_problem:  # a new version on this image's content resolves it
            self._show_banner()
            self.image_list.model.set_problems(self.project.problems)
        session.dirty = False
        session.saved_version, session.saved_kind = version, kind
        session.edited = session.edited or kind == "corrected"
        self._refresh_row()
        self.saved.emit(session.rel_path, version)
        return version

    # -- messages and close ----------------------------------------------------------------
    def show_error(self, text: str, modal_info: bool = False) -> None:
        """Status bar + a non-blocking message box (never blocks the event loop)."""
        self.statusBar().showMessage(text, 10000)
        box = QMessageBox(QMessageBox.Icon.Information if modal_info else QMessageBox.Icon.Warning, "LungSAM", text, parent=self)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.show()
        self._dialogs = [d for d in self._dialogs if d.isVisible()] + [box]

    def on_toggle_trainer(self, checked: bool) -> None:
        self.trainer_dock.setVisible(checked)

    def closeEvent(self, event) -> None:
        self.save_current(reason="close")
        remember_layout(self)
        self.autosave.stop()
        self.trainer_pane.shutdown()
        self.folder_job.cancel()
        for thread in (self.worker_thread, self.loader_thread, self.folder_thread):
            thread.quit()
            thread.wait(30000)
        if self.project is not None:
            self.project.close()
            self.project = None
        for dialog in self._dialogs:
            dialog.close()
        super().closeEvent(event)
