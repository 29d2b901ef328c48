"""Global, importance-driven rank allocation: scores, budgets, schedules, freezing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.adalora import (
    AdaLoraConfig,
    CubicSchedule,
    EventSchedule,
    RankAllocator,
    adalora_parameters,
    adapter_modules,
    orthogonal_regularizer,
    rank_pattern,
    wrap_adalora,
)
from tests.engine.adalora.test_adalora import small_encoder


class Attn(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attn = Attn(dim)


class Toy(nn.Module):
    """Just enough structure for the default ``blocks.N.attn.qkv`` targets."""

    def __init__(self, depth: int = 3, dim: int = 4) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim) for _ in range(depth))


def toy(r_max: int = 6, target_rank: int = 4, depth: int = 3) -> Toy:
    torch.manual_seed(0)
    model = Toy(depth)
    wrap_adalora(model, AdaLoraConfig(r_max=r_max, target_rank=target_rank))
    return model


def set_grads(model: nn.Module, layer_scales: list[float], seed: int = 0) -> None:
    """Non-zero lambda and synthetic grads whose size is set per layer."""
    g = torch.Generator().manual_seed(seed)
    for scale, layer in zip(layer_scales, adapter_modules(model).values(), strict=True):
        with torch.no_grad():
            layer.lora_lambda.copy_(torch.rand(layer.r_max, generator=g) + 0.5)
        for p in (layer.lora_lambda, layer.lora_P, layer.lora_Q):
            p.grad = scale * (torch.rand(p.shape, generator=g) + 0.5)


def total_rank(model: nn.Module) -> int:
    return sum(m.rank() for m in adapter_modules(model).values())


def test_importance_follows_ema_sensitivity_times_uncertainty() -> None:
    model = toy(depth=1)
    alloc = RankAllocator(
        model, target_rank=4, schedule=EventSchedule((100,)), beta1=0.85, beta2=0.85
    )
    layer = adapter_modules(model)["blocks.0.attn.qkv"]
    ibar = {k: 0.0 for k in ("lambda", "P", "Q")}
    ubar = dict(ibar)
    for seed in range(2):
        set_grads(model, [1.0], seed=seed)
        alloc.update_importance()
        for key, p in (("lambda", layer.lora_lambda), ("P", layer.lora_P), ("Q", layer.lora_Q)):
            ipt = (p * p.grad).abs().detach()
            ibar[key] = 0.85 * ibar[key] + 0.15 * ipt
            ubar[key] = 0.85 * ubar[key] + 0.15 * (ipt - ibar[key]).abs()
    s = {k: ibar[k] * ubar[k] for k in ibar}
    expected = s["lambda"] + s["P"].mean(dim=0) + s["Q"].mean(dim=1)
    assert torch.allclose(alloc.scores()["blocks.0.attn.qkv"], expected, rtol=1e-6)


def test_global_budget_reached_exactly_and_important_layer_keeps_more_rank() -> None:
    model = toy(r_max=6, target_rank=3, depth=3)
    alloc = RankAllocator(model, target_rank=3, schedule=EventSchedule((1,)))
    set_grads(model, [100.0, 1.0, 0.01])
    event = alloc.step(1)
    assert event is not None and event.final and alloc.frozen
    assert total_rank(model) == 9 == alloc.target_budget
    ranks = list(alloc.ranks().values())
    assert ranks == [6, 3, 0]
    # Within the middle layer the survivors are its three highest scores.
    scores = alloc.scores()["blocks.1.attn.qkv"]
    kept = adapter_modules(model)["blocks.1.attn.qkv"].rank_mask.bool()
    assert scores[kept].min() > scores[~kept].max()


def test_ties_still_meet_budget_exactly() -> None:
    model = toy(r_max=6, target_rank=3, depth=3)
    alloc = RankAllocator(model, target_rank=3, schedule=EventSchedule((1, 2)))
    for layer in adapter_modules(model).values():
        for p in (layer.lora_lambda, layer.lora_P, layer.lora_Q):
            p.grad = torch.ones_like(p)
    with torch.no_grad():
        for p in alloc.adapters.values():
            p.lora_lambda.fill_(1.0)
    alloc.step(1)
    assert total_rank(model) == 18 - 9 // 2
    alloc.step(2)
    assert total_rank(model) == 9


def test_events_schedule_prunes_at_given_steps_only() -> None:
    model = toy(r_max=6, target_rank=4, depth=3)  # budget 18 -> 12 in three drops
    alloc = RankAllocator(model, target_rank=4, schedule=EventSchedule((3, 7, 12)))
    changed, totals, previous = [], [], rank_pattern(model)
    for step in range(1, 21):
        set_grads(model, [1.0, 2.0, 3.0], seed=step)
        alloc.step(step)
        pattern = rank_pattern(model)
        if pattern != previous:
            changed.append(step)
            totals.append(total_rank(model))
        # Masks only shrink: nothing pruned comes back.
        for name in pattern:
            assert all(b <= a for a, b in zip(previous[name], pattern[name], strict=True))
        previous = pattern
    assert changed == [3, 7, 12]
    assert totals == [16, 14, 12]
    assert alloc.frozen


def test_event_schedule_from_epochs_uses_epoch_ends() -> None:
    assert EventSchedule.from_epochs([3, 7, 12], steps_per_epoch=10).steps == (30, 70, 120)
    sched = EventSchedule((30, 70, 120))
    budgets = [sched.budget(s, 48 * 12, 32 * 12) for s in (29, 30, 69, 70, 119, 120, 500)]
    assert budgets == [576, 512, 512, 448, 448, 384, 384]
    with pytest.raises(ValueError):
        EventSchedule((5, 5))


def test_cubic_schedule_is_monotone_non_increasing() -> None:
    sched = CubicSchedule(total_steps=100, warmup_steps=10, final_steps=20, interval=5)
    budgets = [sched.budget(s, 480, 320) for s in range(0, 101)]
    assert all(b <= a for a, b in zip(budgets, budgets[1:], strict=False))
    assert budgets[:11] == [480] * 11
    assert budgets[80:] == [320] * 21
    assert 320 < budgets[30] < 480
    assert (
        not sched.allocation_due(10) and sched.allocation_due(15) and not sched.allocation_due(16)
    )


def test_cubic_allocator_shrinks_monotonically_and_freezes_at_target() -> None:
    model = toy(r_max=6, target_rank=2, depth=3)
    alloc = RankAllocator(model, target_rank=2, schedule=CubicSchedule(40, 5, 10, interval=2))
    totals, frozen = [], []
    for step in range(1, 41):
        set_grads(model, [1.0, 0.5, 0.25], seed=step)
        alloc.step(step)
        totals.append(total_rank(model))
        frozen.append(alloc.frozen)
        assert total_rank(model) >= alloc.budget(step)
    assert all(b <= a for a, b in zip(totals, totals[1:], strict=False))
    assert totals[4] == 18 and totals[5] == 18 and totals[6] < 18  # first prune at step 7
    assert totals[29:] == [6] * 11
    assert frozen.index(True) == 29  # frozen from step 30 = total_steps - final_steps
    pattern = rank_pattern(model)
    set_grads(model, [0.0, 0.0, 100.0], seed=99)
    assert alloc.step(41) is None and rank_pattern(model) == pattern


def test_finalize_prunes_to_target_when_training_stops_early() -> None:
    model = toy(r_max=6, target_rank=4, depth=2)
    alloc = RankAllocator(model, target_rank=4, schedule=EventSchedule((100, 200)))
    set_grads(model, [1.0, 1.0])
    alloc.step(1)
    assert total_rank(model) == 12
    event = alloc.finalize()
    assert event is not None and event.final and total_rank(model) == 8 and alloc.frozen


def test_step_without_gradients_is_an_error() -> None:
    alloc = RankAllocator(toy(), target_rank=4, schedule=EventSchedule((1,)))
    with pytest.raises(RuntimeError, match="zero_grad"):
        alloc.step(1)


def test_state_dict_round_trip_restores_scores() -> None:
    model = toy()
    alloc = RankAllocator(model, target_rank=4, schedule=EventSchedule((10,)))
    set_grads(model, [1.0, 2.0, 3.0])
    alloc.step(1)
    resumed = RankAllocator(model, target_rank=4, schedule=EventSchedule((10,)))
    resumed.load_state_dict(alloc.state_dict())
    for name, score in alloc.scores().items():
        assert torch.equal(resumed.scores()[name], score)


def test_training_loop_with_real_gradients_meets_budget() -> None:
    enc = small_encoder(0).train()
    config = AdaLoraConfig(r_max=8, target_rank=5)
    wrap_adalora(enc, config)
    enc.requires_grad_(False)
    for p in adalora_parameters(enc):
        p.requires_grad_(True)
    opt = torch.optim.AdamW(adalora_parameters(enc), lr=1e-2)
    alloc = RankAllocator.from_config(enc, config, EventSchedule((2, 4, 6)))
    x = torch.randn(1, 3, 64, 64)
    target = torch.randn(1, 32, 4, 4)
    for step in range(1, 8):
        loss = (enc(x) - target).pow(2).mean() + config.ortho_weight * orthogonal_regularizer(enc)
        loss.backward()
        opt.step()
        alloc.step(step)
        opt.zero_grad()
    assert total_rank(enc) == 10 and alloc.frozen
    assert all(s.abs().sum() > 0 for s in alloc.scores().values())
