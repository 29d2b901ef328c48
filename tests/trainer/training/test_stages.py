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
    before = float(hooks.extra_loss(model).detach())
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


def test_stage_defaults_and_the_paper_preset():
    from trainer.training.stages import BaseStageConfig

    assert (BaseStageConfig().lr, BaseStageConfig().storage_dtype) == (4e-4, "float32")
    s1 = Stage1Config()
    assert (s1.adapter_lr, s1.decoder_lr, s1.r_max, s1.target_rank) == (1e-3, 1e-4, 48, 32)
    assert (s1.include_proj_mlp, s1.prune_epochs, s1.storage_dtype) == (False, (3, 7, 12), "float32")
    paper = Stage1Config.paper()
    assert (paper.adapter_lr, paper.decoder_lr, paper.r_max, paper.target_rank) == (5e-5, 2e-5, 48, 32)
    s2 = Stage2Config()
    assert (s2.lambda_lr, s2.train_decoder, s2.decoder_lr, s2.selection) == (1e-6, False, 1e-5, {})


@pytest.mark.parametrize("epochs, expected", [
    (1, (1,)), (3, (1, 2)), (5, (1, 2, 4)), (10, (2, 5, 8)), (14, (3, 7, 11)), (15, (3, 7, 12)), (40, (3, 7, 12)),
])
def test_prune_epochs_keep_the_papers_fractions(epochs, expected):
    from trainer.training.stages import scaled_prune_epochs

    assert scaled_prune_epochs(epochs) == expected


def test_start_model_needs_a_model_or_an_architecture_and_builds_reproducibly():
    from engine.errors import TrainingError
    from trainer.training.stages import start_model

    with pytest.raises(TrainingError, match="--model.*--arch"):
        start_model(None, None)
    a, config = start_model(None, CONFIG)
    torch.manual_seed(123)  # whatever the global seed was, the fresh model is the same
    b, _ = start_model(None, CONFIG)
    assert config is CONFIG
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    torch.manual_seed(0)  # the initialisation tools/build_default_model.sh's Stage 0 starts from
    seed0 = build_sam(CONFIG)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), seed0.state_dict().values(), strict=True))

    class Loaded:
        sam, config = a, CONFIG

    model, config = start_model(Loaded(), None)  # type: ignore[arg-type]
    assert model is a and config is CONFIG


def test_base_stage_trains_everything_in_one_group_at_its_rate():
    from trainer.training.stages import BaseStageConfig, base_stage

    model = build_sam(CONFIG)
    model.requires_grad_(False)
    groups, hooks = base_stage(model, CONFIG, BaseStageConfig(lr=0.01), {"test": True})
    assert [(g["name"], g["lr"]) for g in groups] == [("all", 0.01)]
    assert len(groups[0]["params"]) == len(list(model.parameters()))
    assert all(p.requires_grad for p in model.parameters())
    assert hooks.export_best is not None and hooks.extra_loss is None


def fake_adapter_grads(model) -> None:
    """What backward() leaves for the allocator's importance scores (seeded, nonzero)."""
    g = torch.Generator().manual_seed(0)
    for m in adapter_modules(model).values():
        for p in (m.lora_P, m.lora_Q, m.lora_lambda):
            p.grad = torch.randn(p.shape, generator=g)


def test_stage1_groups_rates_decay_and_prune_schedule():
    model, s1, groups, hooks = stage1_setup(epochs=5, adapter_lr=0.3, decoder_lr=0.2, prune_epochs=(2, 4, 9))
    rates = {g["name"]: (g["lr"], g.get("weight_decay")) for g in groups}
    assert rates == {"adapters": (0.3, 0.0), "decoder": (0.2, None), "prompt_encoder": (0.3, 0.0)}
    decoder_ids = {id(p) for p in model.mask_decoder.parameters()}
    prompt_ids = {id(p) for p in model.prompt_encoder.parameters()}
    assert {id(p) for p in groups[1]["params"]} == decoder_ids and {id(p) for p in groups[2]["params"]} == prompt_ids
    # epoch 9 lies beyond the 5-epoch run: pruning happens at the ends of epochs 2 and 4 only
    assert not hooks.eligible_for_best(3) and hooks.eligible_for_best(4) and hooks.eligible_for_best(5)
    fake_adapter_grads(model)
    assert hooks.after_backward(1) is None and hooks.after_backward(3) is None
    first = hooks.after_backward(4)  # end of epoch 2 (2 steps per epoch)
    assert first is not None and first["final"] is False
    assert first["budget"] == (R_MAX * 2 + TARGET * 2) // 2 == sum(first["ranks"].values())
    final = hooks.after_backward(8)
    assert final == {"budget": TARGET * 2, "ranks": final["ranks"], "final": True}
    state = hooks.state()
    hooks.load_state(state)
    assert hooks.on_finish(None, None) == {"rank_pattern_layers": 2, "adapted": 2}


def test_stage1_prunes_at_the_last_epoch_when_the_run_ends_before_the_first_prune():
    model, _, _, hooks = stage1_setup(epochs=2, prune_epochs=(3, 7))
    fake_adapter_grads(model)
    assert not hooks.eligible_for_best(1) and hooks.eligible_for_best(2)
    assert hooks.after_backward(3) is None
    assert hooks.after_backward(4)["final"] is True


def test_stage1_refuses_a_model_with_adapters_and_records_its_config():
    from engine.errors import TrainingError
    from engine.models.structure import ADAPTER_CONFIG_ATTR

    model, s1, _, _ = stage1_setup(ortho_weight=0.01)
    recorded = getattr(model, ADAPTER_CONFIG_ATTR)
    assert (recorded.r_max, recorded.target_rank, recorded.ortho_weight) == (R_MAX, TARGET, 0.01)
    with pytest.raises(TrainingError, match="already has AdaLoRA adapters"):
        stage1(model, CONFIG, s1, epochs=1, steps_per_epoch=2, provenance={})


def test_stage2_refuses_a_model_without_adapters_and_sets_its_rates():
    from engine.errors import TrainingError

    with pytest.raises(TrainingError, match="Stage 1 model"):
        stage2(build_sam(CONFIG), CONFIG, Stage2Config(), {})
    model, *_ = stage1_setup()
    groups, hooks = stage2(model, CONFIG, Stage2Config(lambda_lr=0.5, train_decoder=True, decoder_lr=0.25), {})
    rates = [(g["name"], g["lr"], g.get("weight_decay")) for g in groups]
    assert rates == [("lambda", 0.5, 0.0), ("decoder", 0.25, None)]
    assert hooks.extra_loss is None and hooks.after_backward is None


def test_trainable_summary_counts_trainable_and_total():
    from trainer.training.stages import trainable_summary

    model = build_sam(CONFIG)
    total = sum(p.numel() for p in model.parameters())
    model.image_encoder.requires_grad_(False)
    frozen = sum(p.numel() for p in model.image_encoder.parameters())
    assert trainable_summary(model) == {"trainable_params": total - frozen, "total_params": total}


def test_stage1_prunes_at_a_listed_epoch_that_is_the_last_one():
    model, _, _, hooks = stage1_setup(epochs=4, prune_epochs=(2, 4, 9))
    assert not hooks.eligible_for_best(3) and hooks.eligible_for_best(4)  # 4 is kept, 9 dropped
    fake_adapter_grads(model)
    assert hooks.after_backward(4)["final"] is False and hooks.after_backward(8)["final"] is True


def test_stage2_quantises_what_the_selection_names():
    model_all, *_ = stage1_setup()
    model_some, *_ = stage1_setup()
    _, hooks_all = stage2(model_all, CONFIG, Stage2Config(), {})
    _, hooks_some = stage2(model_some, CONFIG, Stage2Config(selection={"mask_decoder": False}), {})
    from engine.quant import fake_quant_layers

    every, some = set(fake_quant_layers(model_all)), set(fake_quant_layers(model_some))
    assert some and some < every
    assert not any(name.startswith("mask_decoder.") for name in some)
    assert any(name.startswith("mask_decoder.") for name in every)
