"""A broken or hostile model chosen in the Model menu of the real MainWindow: the user is told
why, and the model in use (status bar, worker, predictions) stays exactly as it was."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.models import save_sam_folder, sha256_file
from tests.app.conftest import drag_box, engine_mask, wait_settled


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _copy(gui_model: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(gui_model, tmp_path / "broken" / name))


def _edit(folder: Path, change) -> None:
    meta = json.loads((folder / "model.json").read_text())
    change(meta)
    (folder / "model.json").write_text(json.dumps(meta))


def make_broken(kind: str, gui_model: Path, tmp_path: Path) -> tuple[Path, str]:
    """(path the user picks, text the error message must contain)."""
    if kind == "swapped-weights":
        folder = _copy(gui_model, tmp_path, kind)
        sam, config = _other_tiny()
        other = save_sam_folder(tmp_path / "other", sam, config)
        shutil.copy(other / "weights.safetensors", folder / "weights.safetensors")
        return folder, "does not match model.json"
    if kind == "truncated-safetensors":
        folder = _copy(gui_model, tmp_path, kind)
        weights = folder / "weights.safetensors"
        weights.write_bytes(weights.read_bytes()[:700])
        _edit(folder, lambda meta: meta["weights"].update(sha256=sha256_file(weights)))
        return folder, "truncated or corrupt"
    if kind == "wrong-shapes":
        folder = _copy(gui_model, tmp_path, kind)
        _edit(folder, lambda meta: meta["config"].update(encoder_embed_dim=64))
        return folder, "weights do not fit the model"
    if kind == "malformed-json":
        folder = _copy(gui_model, tmp_path, kind)
        _edit(folder, lambda meta: meta.pop("config"))
        return folder, "no 'config'"
    if kind == "pickle-runs-code":
        path = tmp_path / "broken" / "evil.pth"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            pickle.dump({"image_encoder.pos_embed": _RunsCode(tmp_path / "pwned")}, handle)
        return path, "refused to load"
    raise AssertionError(kind)


def _other_tiny():
    from engine.sam import build_sam
    from tests.sam_factory import tiny_config

    torch.manual_seed(99)
    config = tiny_config(img_size=64)
    return build_sam(config), config


def choose_in_model_menu(qtbot, window, monkeypatch, path: Path) -> str:
    """Pick ``path`` through the Model menu's own file dialogs; returns the error shown."""
    from app.gui import model_menu

    if path.is_dir():
        monkeypatch.setattr(model_menu.QFileDialog, "getExistingDirectory", lambda *a, **k: str(path))
        text = "Open model folder..."
    else:
        monkeypatch.setattr(model_menu.QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
        text = "Import SAM / MedSAM checkpoint (.pth)..."
    window.model_menu.rebuild()
    action = next(a for a in window.menus["Model"].actions() if a.text() == text)
    with qtbot.waitSignal(window.worker.model_failed, timeout=20000) as failed:
        action.trigger()
    qtbot.waitUntil(lambda: not window.model_loading, timeout=5000)
    return failed.args[0]


def model_state(window) -> tuple:
    return (
        window.model_info.model_hash,
        window.model_info.source,
        window.worker.predictor.model.model_hash,
        window.status.model.text(),
        window.status.device.text(),
        window.model_menu.current_source,
    )


@pytest.mark.parametrize(
    "kind", ["swapped-weights", "truncated-safetensors", "wrong-shapes", "malformed-json", "pickle-runs-code"]
)
def test_broken_model_from_the_menu_is_refused_and_the_old_model_stays(
    qtbot, gui_model, image_folder, make_window, monkeypatch, tmp_path, kind
):
    window = make_window([image_folder])
    before = model_state(window)
    assert before[3] == "model: tiny-default"
    embedded = window.embedded_token
    path, expected = make_broken(kind, gui_model, tmp_path)

    message = choose_in_model_menu(qtbot, window, monkeypatch, path)

    assert expected in message and path.name in message
    assert expected in window.statusBar().currentMessage()
    assert any(d.isVisible() and expected in d.text() for d in window._dialogs), "no message box shown"
    assert model_state(window) == before
    assert window.embedded_token == embedded  # the current image's embedding is still used
    assert not (tmp_path / "pwned").exists()
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    sent = window.annotator.last_request
    expected_mask = engine_mask(gui_model, window.image.pixels, boxes=np.array(sent.box))
    got = window.annotator.session.masks["lungs"]
    assert 0 < got.sum() < got.size and np.array_equal(got, expected_mask)


def test_device_change_after_a_failed_load_keeps_the_model_in_use(
    qtbot, gui_model, image_folder, make_window, monkeypatch, tmp_path
):
    window = make_window([image_folder])
    before = model_state(window)[:3]
    path, _ = make_broken("wrong-shapes", gui_model, tmp_path)
    choose_in_model_menu(qtbot, window, monkeypatch, path)
    failures: list[str] = []
    window.worker.model_failed.connect(failures.append)
    window.model_menu.device_chosen.emit("cpu")  # Model > Device > CPU
    qtbot.waitUntil(lambda: not window.model_loading, timeout=20000)
    qtbot.wait(50)
    assert failures == [] and model_state(window)[:3] == before


def test_model_that_cannot_move_to_the_device_leaves_the_old_model(
    qtbot, gui_model, image_folder, make_window, monkeypatch, tmp_path
):
    """A model that loads but fails on its way to the device (CUDA out of memory) is refused
    before the swap: the predictor never runs the old network under the new model's hash."""
    import engine.models
    from engine.models import LoadedModel

    window = make_window([image_folder])
    before = model_state(window)
    sam, config = _other_tiny()

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    object.__setattr__(sam, "to", out_of_memory)
    big = LoadedModel(sam=sam, config=config, model_hash="too-big", source=str(tmp_path / "big"))
    real_load = engine.models.load_model
    monkeypatch.setattr(engine.models, "load_model", lambda spec, *a: big if spec == str(tmp_path / "big") else real_load(spec, *a))
    (tmp_path / "big").mkdir()
    message = choose_in_model_menu(qtbot, window, monkeypatch, tmp_path / "big")
    assert "out of memory" in message
    assert model_state(window) == before
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    sent = window.annotator.last_request
    expected_mask = engine_mask(gui_model, window.image.pixels, boxes=np.array(sent.box))
    assert np.array_equal(window.annotator.session.masks["lungs"], expected_mask)
