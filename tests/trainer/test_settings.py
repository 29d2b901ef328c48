"""The settings form of each stage: defaults, validation, the CLI options and argv round trip."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from engine.errors import TrainingError
from trainer.settings import (
    BaseSettings,
    Stage1Settings,
    Stage2Settings,
    add_settings_arguments,
    settings_for,
    settings_from_args,
)


def parse(stage: str, argv: list[str], preset: str = "default"):
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    return settings_from_args(stage, parser.parse_args(argv), preset)


def test_defaults_are_the_stage_configs_defaults():
    """The form mirrors what a stage does when built without it (one set of numbers)."""
    from trainer.training import BaseStageConfig, Stage1Config, Stage2Config

    s1, s2 = Stage1Settings(), Stage2Settings()
    assert BaseSettings().lr == BaseStageConfig.lr
    assert (s1.adapter_lr, s1.decoder_lr, s1.rank_max, s1.rank_target) == (
        Stage1Config.adapter_lr, Stage1Config.decoder_lr, Stage1Config.r_max, Stage1Config.target_rank)
    paper = Stage1Config.paper()
    assert (Stage1Settings.paper().adapter_lr, Stage1Settings.paper().decoder_lr) == (paper.adapter_lr, paper.decoder_lr)
    assert (s2.lambda_lr, s2.decoder_lr, s2.train_decoder) == (Stage2Config.lambda_lr, Stage2Config.decoder_lr, False)
    assert (BaseSettings().epochs, s1.epochs, s2.epochs) == (30, 15, 5)


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--adapter-lr", "0"], "--adapter-lr must be a positive number"),
    (["--rank-max", "8", "--rank-target", "9"], "--rank-target 9 must lie in 1..--rank-max 8"),
    (["--lambda-lr", "1e-6"], "--lambda-lr is not a setting of stage1"),
])
def test_zero_is_a_value_and_invalid_values_are_refused_by_name(argv, message):
    with pytest.raises(TrainingError, match=message):
        parse("stage1", argv)


def test_cli_options_override_the_defaults_and_round_trip_through_argv():
    s1 = parse("stage1", ["--epochs", "3", "--rank-max", "8"])
    assert s1 == Stage1Settings(epochs=3, rank_max=8, rank_target=8)  # the target follows a smaller max
    assert parse("stage1", s1.to_argv()) == s1
    paper = parse("stage1", ["--batch-size", "2"], preset="paper")
    assert (paper.adapter_lr, paper.batch_size) == (5e-5, 2)
    s2 = settings_for("stage2", train_decoder=True, lambda_lr=1e-5)
    assert parse("stage2", s2.to_argv()) == s2 and "--train-decoder" in s2.to_argv()
    assert parse("base", ["--lr", "0.001"]) == BaseSettings(lr=1e-3)


def test_help_names_each_stages_default_and_imports_no_torch():
    code = ("import sys; from app.cli import build_parser; build_parser(); "
            "assert not [m for m in sys.modules if m.startswith('torch')], 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "base 30, stage1 15, stage2 5" in text and "stage1 0.001" in text
