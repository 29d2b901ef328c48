"""benchmarks/int8.py: the figures it writes, and the free-Linear bound it times."""

from __future__ import annotations

import json

import pytest
import torch

from engine.quant import Int8Linear
from tests.benchmarks.conftest import benchmark_module


@pytest.fixture(scope="module")
def bench():
    yield from benchmark_module("int8")


def test_json_has_every_column_the_issue_names(bench, tmp_path):
    out = tmp_path / "int8.json"
    bench.main(["--arch", "tiny", "--repeats", "2", "--box-repeats", "2", "--warmup", "0", "--threads", "1",
                "--json", str(out)])
    figures = json.loads(out.read_text())
    wanted = ["fp32_ms", "int8_ms", "int8_free_linear_ms", "ort_fp32_ms", "ort_int8_ms", "fp32_box_ms", "int8_box_ms", "int8_box_free_linear_ms"]
    for key in wanted:
        assert figures[key] > 0, key
        assert figures[key.replace("_ms", "_min_ms")] <= figures[key], key
    assert figures["file_int8_bytes"] < figures["file_fp32_bytes"]


def test_free_linear_encoder_replays_outputs_without_running_a_linear(bench, tmp_path, monkeypatch):
    from engine.models import export_int8, load_model_folder
    from engine.sam import build_sam, preset

    torch.manual_seed(0)
    config = preset("tiny")
    int8 = load_model_folder(export_int8(build_sam(config), config, tmp_path / "int8"))
    x = torch.randn(1, 3, config.img_size, config.img_size)
    free = bench.free_linear_encoder(int8, x)
    with torch.inference_mode():
        expected = int8.sam.image_encoder(x)

        def refuse(self, _x):
            raise AssertionError("an integer Linear layer ran")

        monkeypatch.setattr(Int8Linear, "forward", refuse)
        assert torch.equal(free(x), expected)  # every Linear replayed, the rest computed
        with pytest.raises(AssertionError, match="an integer Linear layer ran"):
            int8.sam.image_encoder(x)  # the model itself still runs its own layers
