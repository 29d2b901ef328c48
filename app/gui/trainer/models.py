"""The trainer pane's model versions: "Use new model" or "Keep current model", rollback,
Model-menu picks, hot-swap.

A mixin of :class:`app.gui.trainer.pane.TrainerPane`, kept apart so the pane module holds the
run (plan, job, comparison) and this one which model the project uses afterwards: it registers
a finished run (:meth:`trainer.finetune.FineTune.register`), activates recorded versions, keeps
the history list (:class:`app.gui.trainer.model_history.ModelHistory`) current and loads the chosen
model through the window, which re-embeds the current image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import LungSamError
from trainer.finetune import activate, find_version

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance

    from app.gui.trainer.model_history import ModelHistory
    from app.gui.trainer.result_view import ResultView
    from app.gui.trainer.run_view import RunView
    from trainer.finetune import FineTune


class TrainerModels:
    """Model-version handlers; the pane provides the state annotated below and ``_same_project``."""

    window: Any  # the MainWindow (project, model_info, model_menu, load_model, device)
    project: Any  # app.gui.annotate.project.Project | None
    finetune: FineTune | None
    comparison: dict[str, Any] | None
    history: ModelHistory
    run_view: RunView
    result_view: ResultView
    model_registered: SignalInstance

    def _versions(self) -> list[dict[str, Any]]:
        if self.project is None:
            return []
        try:
            return self.project.store.list_model_versions()
        except LungSamError:
            return []

    def _refresh_history(self) -> None:
        self.history.set_versions(self._versions(), self.window.model_info.source if self.window.model_info else None)

    def use_new_model(self) -> dict[str, Any] | None:
        """Register the finished run in the project and hot-swap it in."""
        if self.finetune is None or self.finetune.registered is not None:
            return None
        project = self.project
        if not self._same_project():
            self.run_view.set_status("the run belongs to another project folder; open it to use the model", failure=True)
            return None
        info = self.window.model_info
        previous = {"source": info.source, "name": info.name, "hash": info.model_hash} if info else None
        try:
            version = self.finetune.register(project.store, previous)
        except (LungSamError, OSError) as exc:
            self.run_view.set_status(f"the new model could not be registered: {exc}", failure=True)
            return None
        self.result_view.set_decided()
        self._load(version)
        self.run_view.set_status(f"Using {version['name']} (the previous model stays in the history below).")
        self.model_registered.emit(version)
        return version

    def keep_current_model(self) -> None:
        """The default when the new model is not better: nothing is registered."""
        if self.finetune is None or self.finetune.registered is not None:
            return
        self.finetune.write_status("kept", "the user kept the current model", self.run_view.elapsed)
        self.result_view.set_decided()
        self.run_view.set_status("Kept the current model; the new one stays in the run folder only.")

    def use_version(self, name: str) -> None:
        """Rollback (or roll forward) to a recorded version of this project."""
        if self.project is None:
            return
        try:
            version = activate(self.project.store, name)
        except LungSamError as exc:
            self.run_view.set_status(str(exc), failure=True)
            return
        self._load(version)

    def menu_model_chosen(self, spec: str) -> None:
        """A project version picked in the Model menu becomes the project's active model too."""
        version = find_version(self._versions(), spec)
        if version is not None and not version["active"] and not self.project.read_only:
            try:
                activate(self.project.store, version["name"])
            except LungSamError as exc:
                self.run_view.set_status(str(exc), failure=True)
            self._refresh_history()

    def _load(self, version: dict[str, Any]) -> None:
        self.window.model_menu.project_models = self._versions()
        self.window.load_model(version["path"], self.window.device)  # re-embeds the current image
        self._refresh_history()
