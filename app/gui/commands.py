"""The window's menu commands: one ``on_<id>`` method per action in :mod:`app.gui.shortcuts`.

A mixin of :class:`app.gui.main_window.MainWindow`, kept apart so the window module holds the
wiring (threads, loading, saving) and this one the thousand-times-a-day commands.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from app.gui.annotate import LABEL_ORDER, PRESETS
from app.gui.dialogs import ABOUT, ShortcutsDialog


class WindowCommands:
    """Handlers called by the QActions built in :func:`app.gui.actions.build_menus`."""

    def on_open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if folder:
            self.open_paths([folder])

    def on_open_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open images", "", "Images (*.png *.jpg *.jpeg *.tif *.tiff *.dcm *.dicom *.bmp);;All files (*)")
        if files:
            self.open_paths(files)

    def on_save(self) -> None:
        version = self.save_current("corrected", reason="accepted")
        if version is not None:
            self.statusBar().showMessage(f"saved as corrected (version {version})", 4000)

    def on_save_next(self) -> None:
        """One key per image in the review loop: accept what is drawn, move on."""
        if self.annotator.session is not None and self.annotator.session.masks:
            self.on_save()
        self.on_next_image()

    def on_skip(self) -> None:
        if self.project is None or self.index < 0 or self.project.read_only:
            return
        self.save_current(reason="skip")
        self.project.set_status(self.index, "skipped")
        self._refresh_row()
        self.on_next_image()

    def on_quit(self) -> None:
        self.close()

    def on_next_image(self) -> None:
        self.go_to(self.index + 1)

    def on_previous_image(self) -> None:
        self.go_to(self.index - 1)

    def on_next_unfinished(self) -> None:
        if self.project is not None:
            records = self.project.records
            for i in list(range(self.index + 1, len(records))) + list(range(0, self.index)):
                if records[i].status in ("new", "model"):
                    self.go_to(i)
                    return

    def on_undo(self) -> None:
        self.annotator.undo()

    def on_redo(self) -> None:
        self.annotator.redo()

    def on_fill_holes(self) -> None:
        self.annotator.apply_op("fill")

    def on_remove_islands(self) -> None:
        self.annotator.apply_op("islands")

    def on_clear_label(self) -> None:
        self.annotator.clear_label()

    def _tool(self, name: str) -> None:
        self.canvas.set_tool(name)
        self.actions[f"tool_{name}"].setChecked(True)

    def on_tool_box(self, _checked: bool = True) -> None:
        self._tool("box")

    def on_tool_positive(self, _checked: bool = True) -> None:
        self._tool("positive")

    def on_tool_negative(self, _checked: bool = True) -> None:
        self._tool("negative")

    def on_tool_brush(self, _checked: bool = True) -> None:
        self._tool("brush")

    def on_tool_eraser(self, _checked: bool = True) -> None:
        self._tool("eraser")

    def on_tool_pan(self, _checked: bool = True) -> None:
        self._tool("pan")

    def on_tool_window(self, _checked: bool = True) -> None:
        self._tool("window")

    def on_brush_smaller(self) -> None:
        value = self.panel.brush.value()
        self.panel.brush.setValue(max(1, min(value - 1, round(value / 1.25))))

    def on_brush_bigger(self) -> None:
        value = self.panel.brush.value()
        self.panel.brush.setValue(max(value + 1, round(value * 1.25)))

    def on_label(self, label: str) -> None:
        self.annotator.label = label
        self.panel.set_label(label)
        self.actions[f"label_{LABEL_ORDER.index(label) + 1}"].setChecked(True)

    def on_label_1(self, _checked: bool = True) -> None:
        self.on_label(LABEL_ORDER[0])

    def on_label_2(self, _checked: bool = True) -> None:
        self.on_label(LABEL_ORDER[1])

    def on_label_3(self, _checked: bool = True) -> None:
        self.on_label(LABEL_ORDER[2])

    def on_fit(self) -> None:
        self.canvas.fit()

    def on_zoom_in(self) -> None:
        self.canvas.zoom_by(1.25)

    def on_zoom_out(self) -> None:
        self.canvas.zoom_by(0.8)

    def on_toggle_outline(self, checked: bool) -> None:
        self.panel.outline.setChecked(checked)

    def _set_outline(self, on: bool) -> None:
        self.actions["toggle_outline"].setChecked(on)
        self.annotator.outline = on
        self.annotator.restyle()

    def on_next_style(self) -> None:
        combo = self.panel.style
        if combo.count() < 2:
            self.statusBar().showMessage("this model draws one mask style", 4000)
            return
        combo.setCurrentIndex((combo.currentIndex() + 1) % combo.count())
        self.statusBar().showMessage(f"mask style: {combo.currentText()}", 4000)

    def on_toggle_masks(self, checked: bool) -> None:
        self.annotator.masks_visible = not checked
        self.annotator.restyle()

    def _set_opacity(self, value: float) -> None:
        self.annotator.opacity = value
        self.annotator.restyle()

    def on_opacity_up(self) -> None:
        self.panel.opacity.setValue(self.panel.opacity.value() + 10)

    def on_opacity_down(self) -> None:
        self.panel.opacity.setValue(self.panel.opacity.value() - 10)

    def on_window_preset(self) -> None:
        self._preset = (self._preset + 1) % len(PRESETS)
        self.set_window_preset(PRESETS[self._preset].key)

    def set_window_preset(self, key: str) -> None:
        if self.windower is not None:
            self.window_level = self.windower.preset(key)
            self._apply_window()

    def _window_dragged(self, dx: float, dy: float, final: bool) -> None:
        if self.windower is None:
            return
        if self._wl_start is None:
            self._wl_start = self.window_level
        self.window_level = self.windower.dragged(self._wl_start, dx, dy)
        if final:
            self._wl_start = None
        if not self._wl_timer.isActive():
            self._wl_timer.start()

    def _apply_window(self) -> None:
        if self.windower is not None and self.window_level is not None:
            self.canvas.update_pixels(self.windower.apply(self.window_level))
            w = self.window_level
            self.statusBar().showMessage(f"window {w.center:.0f} / {w.width:.0f}", 3000)

    def _add_window_presets(self) -> None:
        menu = self.menus["View"].addMenu("Window presets")
        for preset in PRESETS:
            menu.addAction(preset.name, lambda k=preset.key: self.set_window_preset(k))

    def on_compare_models(self) -> None:
        from app.gui.compare import DEFAULT_A, CompareWindow

        window = CompareWindow(DEFAULT_A, self.model_spec, self.device)
        if self.image is not None:
            window.set_image(self.image.pixels)
        window.show()
        self._dialogs.append(window)  # closed (threads stopped) with the main window

    def on_shortcuts(self) -> None:
        dialog = ShortcutsDialog(self)
        dialog.show()
        self._dialogs.append(dialog)

    def on_about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.NoIcon, "About LungSAM", ABOUT, parent=self)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.show()
        self._dialogs.append(box)
