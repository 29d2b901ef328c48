"""Trainer pane on the real window: fine-tune on corrected masks, compare, hot-swap, cancel, fail.

The runs are real ``lungsam train stage1`` + ``stage2`` subprocesses on a tiny SAM and six real
chest X-rays whose masks were saved as corrected through the project store.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import trainer.finetune as tp
from engine.project import ProjectStore
from tests.app.conftest import drag_box, engine_mask, wait_ready, wait_settled

RUN_TIMEOUT_MS = 240_000


def open_pane(make_window, qtbot, folder, stage1_epochs: int, stage2_epochs: int = 1):
    window = make_window([folder])
    window.on_toggle_trainer(True)
    pane = window.trainer_pane
    qtbot.waitUntil(lambda: pane.split is not None, timeout=5000)
    s = pane.settings
    s.s1_epochs.setValue(stage1_epochs)
    s.s2_epochs.setValue(stage2_epochs)
    s.s1_batch.setValue(2)
    s.s2_batch.setValue(2)
    s.threads.setValue(1)
    s.device.setCurrentIndex(s.device.findData("cpu"))
    pane.nice = 0  # a loaded test machine must not starve the run
    return window, pane


def wait_run(qtbot, pane, until) -> None:
    """Until ``until()``; a run that ends otherwise fails at once, with its reason and log."""
    qtbot.waitUntil(lambda: until() or (pane.job is not None and pane.job.done and not pane.job.result.ok),
                    timeout=RUN_TIMEOUT_MS)
    if not until():
        pytest.fail(f"the run ended: {pane.job.result.step}: {pane.job.result.reason}\n{pane.run_view.log.toPlainText()[-3000:]}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_fine_tune_compare_swap_and_roll_back(qtbot, gui_model, corrected_project, make_window):
    from engine.models import load_model

    window, pane = open_pane(make_window, qtbot, corrected_project, stage1_epochs=5)
    shown = (sorted(pane.split.train), sorted(pane.split.val))
    assert len(shown[0]) == 5 and len(shown[1]) == 1 and pane.data_view.split_view.topLevelItemCount() == 6
    assert "tiny-default" in pane.data_view.base_label.text() and "Estimated duration: about" in pane.settings.estimate_label.text()
    old_hash = window.model_info.model_hash
    assert pane.start()
    wait_run(qtbot, pane, lambda: pane.comparison is not None)
    kinds = [(e["stage"], e["event"]) for e in pane.events]
    assert ("stage1", "step") in kinds and ("stage1", "epoch") in kinds and ("stage2", "done") in kinds
    assert len(pane.run_view.plot.loss["stage1"]) >= 5  # a loss point for every epoch, not one for the run
    assert len(pane.run_view.plot.dice["stage1"]) == 5 and pane.run_view.plot.dice["stage2"]
    assert pane.run_view.progress.value() == 1000 and "Finished" in pane.status.text()
    assert not (pane.run_dir / tp.DATA_CACHE).exists()  # decoded images removed, the record kept
    summary = json.loads((pane.run_dir / "stage2" / "summary.json").read_text())
    assert (sorted(summary["train_names"]), sorted(summary["val_names"])) == shown  # the split shown is used
    cmp = pane.comparison
    assert cmp["held_back"] == 1 and 0 <= cmp["dice_before"] <= 1 and 0 <= cmp["dice_after"] <= 1
    assert cmp["new"]["int8"] and cmp["trainable_params"] > 0
    assert window.project.store.list_model_versions() == []  # nothing registered before "Use"
    assert pane.use_button.isEnabled()

    pane.use_button.click()
    version = pane.registered
    folder = Path(version["path"])
    assert folder == corrected_project / ".lungsam" / "models" / version["name"]
    assert (folder / "model.json").is_file() and not list(folder.parent.glob(".*partial*"))
    stored = {v["name"]: v for v in window.project.store.list_model_versions()}
    assert stored[version["name"]]["active"]
    prov = stored[version["name"]]["provenance"]
    assert prov["base_model"] == str(gui_model) and prov["run"].startswith(".lungsam/runs/")
    assert prov["data"]["train_images"] == 5 and prov["presets"]["stage1"]["epochs"] == 5
    assert "git_revision" in prov and stored[version["name"]]["metrics"]["dice_after"] == cmp["dice_after"]
    base = next(v for v in stored.values() if v["provenance"].get("role") == "base")
    assert Path(base["path"]) == gui_model  # the previous model stays available
    assert json.loads((pane.run_dir / "status.json").read_text())["status"] == "registered"

    new_hash = load_model(folder).model_hash
    qtbot.waitUntil(lambda: window.model_info.model_hash == new_hash, timeout=30000)
    wait_ready(qtbot, window)  # the current image was re-embedded with the new model
    assert window.worker.predictor.model.model_hash == new_hash != old_hash
    drag_box(qtbot, window, (30, 40, 220, 230))
    wait_settled(qtbot, window)
    box = window.annotator.session.prompt("lungs").box
    assert window.annotator.session.model_hash == new_hash
    assert np.array_equal(window.annotator.session.masks["lungs"],
                          engine_mask(folder, window.image.pixels, boxes=np.array(box)))
    assert tp.fine_tune_base(window.model_info.source, list(stored.values())) == str(gui_model)

    pane.use_version(base["name"])  # rollback
    qtbot.waitUntil(lambda: window.model_info.model_hash == old_hash, timeout=30000)
    assert window.project.store.active_model()["name"] == base["name"]


def test_cancel_stops_the_trainer_within_seconds_and_registers_nothing(qtbot, gui_model, corrected_project, make_window):
    window, pane = open_pane(make_window, qtbot, corrected_project, stage1_epochs=300)
    old_hash = window.model_info.model_hash
    assert pane.start()
    wait_run(qtbot, pane, lambda: any(e["event"] == "step" for e in pane.events))
    pid = pane.job.pid()
    assert pid is not None and alive(pid)
    started = time.monotonic()
    pane.run_view.cancel_button.click()
    qtbot.waitUntil(lambda: not pane.running, timeout=6000)
    assert time.monotonic() - started < 5.0 and not alive(pid)
    assert pane.job.result.cancelled and "Cancelled" in pane.status.text()
    assert [e["stage"] for e in pane.events if e["event"] == "start"] == ["stage1"]  # no Stage 2
    assert window.project.store.list_model_versions() == []
    assert not (corrected_project / ".lungsam" / "models").exists()
    assert json.loads((pane.run_dir / "status.json").read_text())["status"] == "cancelled"
    assert not pane.use_button.isEnabled() and pane.run_view.start_button.isEnabled()
    assert window.model_info.model_hash == old_hash


def test_failed_run_shows_the_trainers_reason_and_changes_nothing(qtbot, gui_model, corrected_project, make_window, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.json").write_text("{ not json")
    window, pane = open_pane(make_window, qtbot, corrected_project, stage1_epochs=1)
    old_hash = window.model_info.model_hash
    pane.set_base_model(str(broken))
    with qtbot.waitSignal(pane.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert pane.start()
    result = blocker.args[0]
    assert not result.ok and not result.cancelled and result.step == "stage1"
    failed = [e for e in pane.events if e["event"] == "failed"]
    assert failed and "not valid JSON" in failed[-1]["reason"] == result.reason
    assert "not valid JSON" in pane.status.text() and "unchanged" in pane.status.text()
    assert "FAILED" in pane.run_view.log.toPlainText()
    assert window.project.store.list_model_versions() == []
    assert window.model_info.model_hash == old_hash and not pane.use_button.isEnabled()


def test_estimate_warns_for_hours_on_cpu_and_paper_preset(qtbot, gui_model, tmp_path, make_window):
    plan = tp.TrainPlan(tmp_path, "base", device="cpu")
    assert tp.estimate(plan, 40, 10, "vit_b").warn
    compact = tp.estimate(plan, 40, 10, "compact")
    assert not compact.warn and 30 < compact.seconds < 600
    # the default model's architecture has its own measured cost (the detail stem costs more)
    assert compact.seconds < tp.estimate(plan, 40, 10, "compact-hr").seconds < 1.5 * compact.seconds
    assert tp.estimate(tp.TrainPlan(tmp_path, "base", device="cuda"), 40, 10, "compact").seconds is None
    window = make_window()
    settings = window.trainer_pane.settings
    settings.paper_button.click()
    assert (settings.stage1().adapter_lr, settings.stage1().decoder_lr) == (5e-5, 2e-5)
    args = tp.stage_args(tp.TrainPlan(tmp_path, "m", settings.stage1(), settings.stage2()), "stage1", "m", tmp_path / "o")
    assert args[args.index("--adapter-lr") + 1] == "5e-05" and args[args.index("--events") + 1] == "-"
    settings.default_button.click()
    assert settings.stage1().adapter_lr == 1e-3


def test_stage2_keeps_stage1s_split_while_the_clinician_keeps_correcting(corrected_project, cxr_dir, tmp_path):
    from engine.errors import LungSamError
    from trainer.data import find_pairs, split_pairs
    from trainer.training import read_exclude

    plan = tp.TrainPlan(corrected_project, "base")
    shown = tp.preview_split(corrected_project, plan.val_fraction, plan.seed)
    stage1 = {"train_names": shown.train, "val_names": shown.val, "skipped": []}
    assert tp.stage2_exclude(plan, stage1, tmp_path / "run" / "stage2") is None  # nothing changed
    extra = sorted((cxr_dir / "images").glob("*.png"))[6]  # corrected while Stage 1 ran
    shutil.copy(extra, corrected_project / extra.name)
    mask = np.array(Image.open(cxr_dir / "masks" / extra.name).convert("L")) > 127
    with ProjectStore.open(corrected_project) as store:
        store.save_annotation(extra.name, {"lungs": mask}, "corrected")
    exclude = tp.stage2_exclude(plan, stage1, tmp_path / "run" / "stage2")
    assert read_exclude(exclude) == [extra.name]
    pairs = find_pairs(corrected_project, read_exclude(exclude))  # what the Stage 2 trainer does
    train, val = split_pairs(pairs, plan.val_fraction, plan.seed)
    assert sorted(p.name for p in val) == sorted(shown.val) and sorted(p.name for p in train) == sorted(shown.train)
    with ProjectStore.open(corrected_project) as store:
        store.set_status(shown.train[0], "skipped")  # an image Stage 1 used is gone
    with pytest.raises(LungSamError, match="no longer corrected"):
        tp.stage2_exclude(plan, stage1, tmp_path / "run" / "stage2")


def test_the_current_model_is_scored_in_the_users_mask_style(corrected_project, styled_tiny_sam, tmp_path):
    """A site working in the 'anatomical' style compares the new model against that style,
    not against the current model's default; a model without that style falls back to its first."""
    from app.gui.trainer import with_style
    from engine.models import save_sam_folder
    from trainer.finetune import evaluate_on, held_back_pairs

    styled = save_sam_folder(tmp_path / "styled", *styled_tiny_sam)
    names = sorted(p.name for p in corrected_project.glob("*.png"))[:3]
    pairs = held_back_pairs(corrected_project, names)
    visible = evaluate_on(str(styled), pairs)
    anatomical = evaluate_on(str(styled), pairs, style="anatomical")
    assert visible.summary["style"] == "visible" and anatomical.summary["style"] == "anatomical"
    assert [r["dice"] for r in visible.rows] != [r["dice"] for r in anatomical.rows]
    from engine.sam import build_sam
    from tests.sam_factory import tiny_config

    config = tiny_config(img_size=64)
    plain = save_sam_folder(tmp_path / "plain", build_sam(config), config)
    assert evaluate_on(str(plain), pairs, style="anatomical").summary["style"] == "default"
    assert with_style({"name": "m", "style": "anatomical"}) == "m [anatomical]"
    assert with_style({"name": "m", "style": "default"}) == "m"
