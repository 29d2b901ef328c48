"""`lungsam finetune PROJECT_FOLDER` from a terminal: the pane's pipeline, the same events."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from app.cli import build_parser, main
from engine.project import ProjectStore
from trainer.training import read_events

TINY = ["--stage1-epochs", "1", "--stage2-epochs", "1", "--stage1-batch-size", "2", "--stage2-batch-size", "2",
        "--threads", "1", "--device", "cpu"]


def test_finetune_runs_both_stages_compares_and_keeps_a_model_it_cannot_call_better(
        gui_model, corrected_project, tmp_path, capsys):
    events_file = tmp_path / "events.jsonl"
    assert main(["finetune", str(corrected_project), *TINY, "--events", str(events_file)]) == 0
    out = capsys.readouterr().out
    assert "Too few held-back images to tell (1; at least 5 are needed)" in out and "kept the current model" in out
    assert "Only 1 image(s) held back: at least 5 are needed" in out  # said before the run too
    events = read_events(events_file)
    kinds = [(e["stage"], e["event"]) for e in events]
    for wanted in [("stage1", "start"), ("stage1", "step"), ("stage1", "done"), ("stage2", "done"),
                   ("compare", "progress"), ("compare", "comparison"), ("compare", "kept"), ("compare", "done")]:
        assert wanted in kinds, wanted
    comparison = next(e for e in events if e["event"] == "comparison")
    assert comparison["verdict"]["kind"] == "too_few" and comparison["held_back"] == 1
    run_dir = next((corrected_project / ".lungsam" / "runs").iterdir())
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    assert json.loads((run_dir / "plan.json").read_text())["base_model"] == str(gui_model)
    assert not (run_dir / ".data-cache").exists() and (run_dir / "stage2" / "int8" / "model.json").is_file()
    with ProjectStore.open(corrected_project) as store:
        assert store.list_model_versions() == []  # not better: nothing registered

        from trainer.finetune import FineTune, TrainPlan

        plan = TrainPlan.from_dict(json.loads((run_dir / "plan.json").read_text()))
        version = FineTune(plan, run_dir).register(store)  # what --register always does
        assert Path(version["path"]) == corrected_project / ".lungsam" / "models" / f"ft-{run_dir.name}"
        assert store.active_model()["name"] == version["name"]


def test_the_pane_and_the_cli_start_the_same_stage(gui_model, corrected_project):
    """The pane's subprocess arguments parse into the request the CLI runs in-process."""
    from app.cli.train import request_from_args
    from trainer.finetune import FineTune, TrainPlan
    from trainer.settings import Stage1Settings

    plan = TrainPlan(corrected_project, str(gui_model), Stage1Settings(epochs=2, rank_max=8, rank_target=4),
                     device="cpu", threads=1)
    finetune = FineTune.begin(plan)
    args = build_parser().parse_args(finetune.stage_args("stage1"))
    assert request_from_args(args) == finetune.stage_request("stage1")


def test_finetune_says_why_it_cannot_start_in_one_line(gui_model, tmp_path, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert main(["finetune", str(folder), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lungsam: error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["finetune", str(tmp_path / "missing")]) == 2
    capsys.readouterr()
    single = tmp_path / "single"
    single.mkdir()
    Image.fromarray(np.full((32, 32), 90, np.uint8)).save(single / "a.png")
    with ProjectStore.open(single) as store:
        store.save_annotation("a.png", {"lungs": np.ones((32, 32), bool)}, "corrected")
    assert main(["finetune", str(single), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing can be held back" in err[0] and not (single / ".lungsam" / "runs").exists()
