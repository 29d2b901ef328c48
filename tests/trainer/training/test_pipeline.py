"""End to end on real images: base -> Stage 1 (AdaLoRA) -> Stage 2 (QAT) -> INT8 -> eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from engine.models import load_model
from trainer.evaluation import evaluate_model
from trainer.training import TrainRequest, read_events, run_stage, settings_for

SHIPPED_BASE = Path(__file__).resolve().parents[3] / "resources" / "models" / "lungsam-compact-base"


def request(stage, data, out, model=None, epochs=2, log_every=None, arch=None, **settings):
    """A run on ``data`` (validated on itself); ``settings`` are the stage's form values."""
    return TrainRequest(stage=stage, data=data, val=data, out=out, model=model, arch=arch,
                        settings=settings_for(stage, epochs=epochs, batch_size=4, **settings),
                        threads=1, progress=False, log_every=log_every)


def test_stage1_stage2_int8_export_and_eval(small_set, tmp_path):
    """From the shipped FP32 base (Dice ~0.97), so "INT8 within 0.01 of FP32" compares two
    useful models; a short run (8 images, 2 steps a stage) keeps it within CI time."""
    run_stage(request("stage1", small_set, tmp_path / "s1", model=str(SHIPPED_BASE), epochs=1))
    run_stage(request("stage2", small_set, tmp_path / "s2", model=str(tmp_path / "s1" / "best"), epochs=1))

    s1 = load_model(tmp_path / "s1" / "best")
    pattern = s1.meta["adapter"]["rank_pattern"]
    ranks = [sum(mask) for mask in pattern.values()]
    assert sum(ranks) == 32 * len(ranks), "global budget of rank 32 per layer reached exactly"
    rank_events = [e for e in read_events(tmp_path / "s1" / "events.jsonl") if e["event"] == "rank"]
    assert rank_events and rank_events[-1]["final"]

    int8_dir = tmp_path / "s2" / "int8"
    int8 = load_model(int8_dir)
    assert int8.is_int8
    # the zero-click box head of the base comes along (Stage 1's best, then Stage 2's INT8)
    assert int8.box_head is not None and load_model(tmp_path / "s1" / "best").box_head is not None
    assert int8.meta["box_head"]["provenance"]["carried_from"]
    assert int8.meta["merged_adapter"]["rank_pattern"] == pattern, "INT8 keeps Stage 1's pruning"
    with safe_open(str(int8_dir / "weights.safetensors"), "pt") as f:
        dtypes = {k: str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert any(k.endswith("weight_int8") and v == "I8" for k, v in dtypes.items())
    assert not any("attn.qkv.weight_int8" in k for k in dtypes), "qkv stays FP32 (paper)"
    assert not any("lora_" in k for k in dtypes), "adapters are merged into qkv at export"

    fp32 = evaluate_model(s1, small_set, device="cpu")
    quant = evaluate_model(int8, small_set, device="cpu")
    assert fp32.summary["n"] == quant.summary["n"] == 8
    fp32_dice = fp32.summary["metrics"]["dice"]["mean"]
    quant_dice = quant.summary["metrics"]["dice"]["mean"]
    assert fp32_dice > 0.9 and quant_dice > 0.9, "both models are good enough for the comparison to mean something"
    delta = abs(fp32_dice - quant_dice)
    print(f"pipeline from the shipped base: FP32 Dice {fp32_dice:.6f}, INT8 Dice {quant_dice:.6f}, delta {delta:.6f}")
    assert delta < 0.01
    summary = json.loads((tmp_path / "s2" / "summary.json").read_text())
    assert summary["int8_model"].endswith("int8") and summary["trainable_params"] > 0
    n_lambda = sum(len(mask) for mask in pattern.values())
    assert summary["trainable_params"] == n_lambda, "Stage 2 trains exactly the Lambda entries"


def test_stage2_refuses_a_model_without_adapters(small_set, tmp_path):
    from engine.errors import TrainingError

    run_stage(request("base", small_set, tmp_path / "base", arch="tiny", epochs=1))
    with pytest.raises(TrainingError, match="Stage 1 model"):
        run_stage(request("stage2", small_set, tmp_path / "s2", model=str(tmp_path / "base" / "best")))
    failed = [e for e in read_events(tmp_path / "s2" / "events.jsonl") if e["event"] == "failed"]
    assert failed and "Stage 1" in failed[0]["reason"]


def test_rank_budget_options_reach_the_allocator(small_set, tmp_path):
    run_stage(request("base", small_set, tmp_path / "base", arch="tiny", epochs=1))
    run_stage(request("stage1", small_set, tmp_path / "s1", model=str(tmp_path / "base" / "best"),
                      epochs=2, rank_max=8, rank_target=3, log_every=1))
    pattern = load_model(tmp_path / "s1" / "best").meta["adapter"]["rank_pattern"]
    assert all(len(mask) == 8 for mask in pattern.values())
    assert sum(sum(mask) for mask in pattern.values()) == 3 * len(pattern)
    steps = [e for e in read_events(tmp_path / "s1" / "events.jsonl") if e["event"] == "step"]
    assert len(steps) == 4, "one step event per step with --log-every 1 (8 images / batch 4 x 2 epochs)"
