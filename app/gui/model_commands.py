"""The model in use: loading it in the worker, and the worker's embedding reports.

A mixin of :class:`app.gui.main_window.MainWindow`, as :mod:`app.gui.commands` is: the window
module keeps the wiring, this one what happens when a model loads, fails or embeds an image.
"""

from __future__ import annotations

from app.gui.annotate import ModelInfo

NO_MODEL = "no model installed - choose one (Model menu)"


class ModelCommands:
    """Load a model (Model menu, start-up, device switch) and show what the worker reports."""

    def load_model(self, spec: str | None, device: str = "auto") -> None:
        """Load in the worker; on success the current image is re-embedded."""
        from engine.models import default_model_name

        if spec is None and default_model_name() is None:
            self.status.set_model(None, None)
            self.statusBar().showMessage(NO_MODEL)
            self.status.model.setText(NO_MODEL)
            return
        # Spec and device become current only once the load succeeds (_model_ready), so a
        # failed load never turns a later device switch into a reload of the broken model.
        self._pending_model = (spec, device)
        self.model_loading = True
        self.worker.load_model(spec, device)

    def _model_ready(self, info: ModelInfo) -> None:
        self.model_loading = False
        pending = self._pending_model
        if pending is not None:
            self.model_spec, self.device = pending
            self.model_menu.device = self.device
        self.model_info = info
        self.annotator.model = (info.name, info.model_hash)
        self.annotator.style = self.panel.set_styles(info.styles, self.annotator.preferred_style())
        self.model_menu.current_source = info.source
        self.status.set_model(info.name, info.device)
        self.loader.set_model(info.model, info.device)
        self.statusBar().showMessage(f"model {info.name} on {info.device}", 4000)
        self.embedded_token = -1
        if self.image is not None:
            self.worker.post_embed(self.token, self.image.pixels)

    def _model_failed(self, message: str) -> None:
        self.model_loading = False
        self.show_error(message)
        if self.model_info is None:
            self.status.model.setText(NO_MODEL)

    def _embed_failed(self, token: int, message: str) -> None:
        if token == self.token:
            self.show_error(message)

    def _worker_busy(self, what: str) -> None:
        self.status.set_busy(what)

    def _embedded(self, token: int, info) -> None:
        if token == self.token:
            self.embedded_token = token
            self.status.set_embedding(info.seconds, info.from_cache)
