"""Which model `lungsam train` starts from when --model is left out or names a run folder."""

from __future__ import annotations

import pytest

from engine.errors import TrainingError
from trainer.training import start_model_spec


def test_stage1_defaults_to_the_shipped_fp32_base_and_a_run_folder_means_its_best(tmp_path, monkeypatch):
    resources = tmp_path / "resources"
    base = resources / "models" / "lungsam-compact-base"
    base.mkdir(parents=True)
    (base / "model.json").write_text("{}")
    monkeypatch.setenv("LUNGSAM_RESOURCES", str(resources))
    assert start_model_spec("stage1", None) == str(base)
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "best" / "model.json").write_text("{}")
    assert start_model_spec("stage2", str(run)) == str(run / "best")
    assert start_model_spec("stage2", str(run / "best")) == str(run / "best")  # a model folder as given
    assert start_model_spec("base", None) is None  # from scratch with --arch
    with pytest.raises(TrainingError, match="stage2 needs --model"):
        start_model_spec("stage2", None)
    monkeypatch.setenv("LUNGSAM_RESOURCES", str(tmp_path / "nothing"))
    with pytest.raises(TrainingError, match="lungsam-compact-base is not installed"):
        start_model_spec("stage1", None)
