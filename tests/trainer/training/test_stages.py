"""The paper's stage contract on a tiny model (no data files needed).

Stage 1 (eq. 2): the step's loss carries ``ortho_weight x orthogonal_regularizer``.
Stage 2 (eq. 4): only Lambda trains (exactly as many trainable scalars as Lambda entries),
P, Q and everything else stay bit-identical, the rank masks Stage 1 found stay as they were
(the budget met exactly), masked Lambda entries are exactly 0, and the INT8 export records
Stage 1's rank pattern.
"""

from __future__ import annotations

import json

import pytest
import torch

from engine.adalora import (
    adapter_modules,
    count_trainable,
    lambda_parameters,
    orthogonal_regularizer,
    rank_pattern,
)
from engine.sam import build_sam
from tests.sam_factory import tiny_config
from tests.train_factory import synthetic_set
from trainer.training import EventWriter, LoopConfig, Trainer
from trainer.training import loop as loop_module
from trainer.training.stages import Stage1Config, Stage2Config, stage1, stage2

CONFIG = tiny_config(img_size=64)
R_MAX, TARGET = 8, 3


def make_trainer(model, groups, hooks, run_dir, epochs):
    data = synthetic_set(CONFIG.img_size, 4)
    loop = LoopConfig(epochs=epochs, batch_size=2, augment=False, jitter_px=0, warmup_steps=1,
                      max_clicks=1, val_clicks=1)
    return Trainer(model, CONFIG, groups, data, data, run_dir, loop, EventWriter(None), hooks, "cpu",
                   progress=False)


def stage1_setup(epochs=2, **cfg):
    torch.manual_seed(0)
    model = build_sam(CONFIG)
    s1 = Stage1Config(r_max=R_MAX, target_rank=TARGET, **cfg)
    groups, hooks = stage1(model, CONFIG, s1, epochs=epochs, steps_per_epoch=2, provenance={"test": True})
    return model, s1, groups, hooks


@pytest.fixture(scope="module")
def stage1_model(tmp_path_factory):
    """A Stage 1 model after a short run that pruned to the budget (and its run folder)."""
    run = tmp_path_factory.mktemp("s1")
    model, _, groups, hooks = stage1_setup()
    make_trainer(model, groups, hooks, run, epochs=2).run()
    return model, run


def test_stage1_default_ortho_weight_is_the_papers():
    assert Stage1Config().ortho_weight == 0.003 == Stage1Config.paper().ortho_weight


def test_stage1_extra_loss_is_weighted_regulariser_and_is_in_the_step_loss(tmp_path, monkeypatch):
    model, s1, groups, hooks = stage1_setup(ortho_weight=0.05)
    reg = orthogonal_regularizer(model)
    assert float(reg.detach()) > 0
    extra = hooks.extra_loss(model)
    assert float(extra.detach()) == pytest.approx(0.05 * float(reg.detach()), rel=1e-6)

    seg_losses = []
    real = loop_module.segmentation_loss

    def recording(*args, **kwargs):
        loss, parts = real(*args, **kwargs)
        seg_losses.append(float(loss.detach()))
        return loss, parts

    monkeypatch.setattr(loop_module, "segmentation_loss", recording)
    trainer = make_trainer(model, groups, hooks, tmp_path, epochs=1)
    before = float(hooks.extra_loss(model))
    parts = trainer.train_step(trainer._batch(0, 0)[0])
    assert parts["extra_loss"] == pytest.approx(before, rel=1e-6) and parts["extra_loss"] > 0
    assert parts["loss"] == pytest.approx(seg_losses[-1] + before, rel=1e-6, abs=1e-7)


def test_stage1_trains_adapters_decoder_and_prompt_encoder_only():
    model, _, groups, _ = stage1_setup()
    names = [g["name"] for g in groups]
    assert names == ["adapters", "decoder", "prompt_encoder"]
    in_groups = {id(p) for g in groups for p in g["params"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == in_groups
    adapter_ids = {id(p) for m in adapter_modules(model).values() for p in (m.lora_P, m.lora_Q, m.lora_lambda)}
    assert adapter_ids == {id(p) for p in groups[0]["params"]}
    encoder_rest = [p for n, p in model.image_encoder.named_parameters() if "lora_" not in n]
    assert encoder_rest and not any(p.requires_grad for p in encoder_rest), "the encoder base stays frozen"


def test_stage1_prunes_to_the_budget_exactly(stage1_model):
    model, _ = stage1_model
    pattern = rank_pattern(model)
    assert all(len(mask) == R_MAX for mask in pattern.values())
    assert sum(map(sum, pattern.values())) == TARGET * len(pattern)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_stage2_trains_exactly_the_lambda_entries(stage1_model):
    import copy

    model = copy.deepcopy(stage1_model[0])
    groups, _ = stage2(model, CONFIG, Stage2Config(), {"test": True})
    n_lambda = sum(m.lora_lambda.numel() for m in adapter_modules(model).values())
    assert n_lambda == R_MAX * len(adapter_modules(model))
    assert count_trainable(model) == n_lambda
    assert [g["name"] for g in groups] == ["lambda"]
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in lambda_parameters(model)]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith("lora_lambda") for n in trainable)


def test_stage2_with_decoder_adds_exactly_the_decoder(stage1_model):
    import copy

    model = copy.deepcopy(stage1_model[0])
    stage2(model, CONFIG, Stage2Config(train_decoder=True), {"test": True})
    n_lambda = sum(m.lora_lambda.numel() for m in adapter_modules(model).values())
    n_decoder = sum(p.numel() for p in model.mask_decoder.parameters())
    assert count_trainable(model) == n_lambda + n_decoder


def test_stage2_run_moves_only_lambda_and_keeps_stage1_rank_pattern(stage1_model, tmp_path):
    import copy

    model = copy.deepcopy(stage1_model[0])
    pattern1 = rank_pattern(model)
    assert sum(map(sum, pattern1.values())) == TARGET * len(pattern1)
    before = snapshot(model)
    groups, hooks = stage2(model, CONFIG, Stage2Config(lambda_lr=5e-2), {"test": True})
    assert rank_pattern(model) == pattern1, "Stage 2 keeps the masks Stage 1 found"
    trainer = make_trainer(model, groups, hooks, tmp_path / "s2", epochs=2)
    trainer.run()

    after = snapshot(model)
    moved = []
    for key, value in before.items():
        if key.endswith("lora_lambda"):
            if not torch.equal(value, after[key]):
                moved.append(key)
            continue
        assert key in after, key
        assert torch.equal(value, after[key]), f"{key} changed in Stage 2 (only Lambda trains)"
    assert moved, "Lambda trained"
    assert rank_pattern(model) == pattern1
    for name, m in adapter_modules(model).items():
        masked = m.rank_mask == 0
        assert masked.any(), name
        assert torch.all(m.lora_lambda[masked] == 0), f"{name}: masked Lambda entries must be exactly 0"

    int8_meta = json.loads((tmp_path / "s2" / "int8" / "model.json").read_text())
    exported = int8_meta["merged_adapter"]["rank_pattern"]
    assert exported == pattern1, "the INT8 model records Stage 1's rank pattern"
    assert sum(map(sum, exported.values())) == TARGET * len(exported), "budget met exactly"
    best_meta = json.loads((tmp_path / "s2" / "best" / "model.json").read_text())
    assert best_meta["adapter"]["rank_pattern"] == pattern1
