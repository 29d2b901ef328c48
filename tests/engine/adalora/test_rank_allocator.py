"""Global, importance-driven rank allocation: scores, budgets, schedules, freezing."""

from __future__ import annotations

import dataclasses

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


# -- found by mutation testing (tools/mutation.sh) --------------------------------------------


def test_cubic_budget_follows_adalora_formula_exactly() -> None:
    # warmup 4, span 8, final 2: remaining = (8 - k) / 8 is exact in binary, so the floored
    # budget 10 + 64 * remaining^3 is known by hand: 64, 42.875, 27, 15.625, 8, ...
    sched = CubicSchedule(total_steps=14, warmup_steps=4, final_steps=2, interval=3)
    budgets = [sched.budget(s, 74, 10) for s in range(15)]
    assert budgets == [74] * 5 + [52, 37, 25, 18, 13, 11, 10] + [10] * 3
    # Due every `interval` steps counted from the end of warm-up, and from the end of the
    # decay on (the budget has reached the target there, on the grid or not).
    due = [s for s in range(15) if sched.allocation_due(s)]
    assert due == [7, 10, 12, 13, 14]
    assert [s for s in range(15) if sched.is_final(s)] == [12, 13, 14]


def test_cubic_defaults_are_peft_tinit_0_tfinal_0_delta_t_1() -> None:
    sched = CubicSchedule(total_steps=10)
    assert sched.budget(0, 20, 10) == 20
    assert sched.budget(1, 20, 10) == 17  # 10 + 10 * 0.9^3: pruning starts at step 1
    assert all(sched.allocation_due(s) for s in range(1, 11))
    assert not sched.is_final(9) and sched.is_final(10) and sched.budget(10, 20, 10) == 10


@pytest.mark.parametrize(
    "args", [(10, 0, 0, 1), (10, 9, 0, 1), (10, 0, 9, 1), (10, 3, 3, 7)], ids=str
)
def test_cubic_schedule_accepts_zero_warmup_zero_final_interval_one(args: tuple) -> None:
    CubicSchedule(*args)


@pytest.mark.parametrize(
    "args",
    [(10, -1, 0, 1), (10, 0, -1, 1), (10, 0, 0, 0), (10, 5, 5, 1), (10, 3, 8, 1)],
    ids=str,
)
def test_cubic_schedule_rejects_negative_lengths_zero_interval_and_no_room(args: tuple) -> None:
    with pytest.raises(ValueError):
        CubicSchedule(*args)


def test_event_schedule_rejects_step_zero() -> None:
    for steps in ((0,), (0, 5)):
        with pytest.raises(ValueError):
            EventSchedule(steps)


def test_schedules_and_events_are_immutable() -> None:
    """Validation happens once, in __post_init__; an assignment must not bypass it."""
    model = toy(depth=1)
    alloc = RankAllocator(model, target_rank=4, schedule=EventSchedule((1,)))
    set_grads(model, [1.0])
    event = alloc.step(1)
    assert event is not None
    for obj, field in (
        (EventSchedule((1,)), "steps"),
        (CubicSchedule(10), "total_steps"),
        (event, "budget"),
    ):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, 0)


def test_step_reports_an_event_only_when_it_pruned() -> None:
    model = toy(r_max=6, target_rank=4, depth=3)
    alloc = RankAllocator(model, target_rank=4, schedule=EventSchedule((3, 5)))
    events = {}
    for step in range(1, 7):
        set_grads(model, [1.0, 2.0, 3.0], seed=step)
        events[step] = alloc.step(step)
    assert [s for s, e in events.items() if e is not None] == [3, 5]
    assert events[3].budget == 15 and not events[3].final
    assert events[5].budget == 12 and events[5].final


def test_target_rank_may_be_zero_or_r_max_but_not_outside() -> None:
    model = toy(r_max=6, depth=2)
    set_grads(model, [1.0, 1.0])
    full = RankAllocator(model, target_rank=6, schedule=EventSchedule((1,)))
    assert full.finalize() is None and full.frozen and total_rank(model) == 12  # nothing to prune
    empty = RankAllocator(model, target_rank=0, schedule=EventSchedule((1,)))
    event = empty.finalize()
    assert event is not None and event.budget == 0 and total_rank(model) == 0
    for bad in (-1, 7):
        with pytest.raises(ValueError):
            RankAllocator(model, target_rank=bad, schedule=EventSchedule((1,)))


def test_prune_to_the_live_count_keeps_every_mask() -> None:
    model = toy(r_max=6, depth=3)
    alloc = RankAllocator(model, target_rank=4, schedule=EventSchedule((1,)))
    set_grads(model, [1.0, 2.0, 3.0])
    alloc.update_importance()
    before = rank_pattern(model)
    event = alloc.prune_to(18)
    assert event.budget == 18 and rank_pattern(model) == before
    with pytest.raises(ValueError):
        alloc.prune_to(19)


def test_finalize_when_already_at_target_prunes_nothing() -> None:
    model = toy(r_max=6, target_rank=4, depth=2)
    alloc = RankAllocator(model, target_rank=4, schedule=EventSchedule((100,)))
    set_grads(model, [1.0, 2.0])
    alloc.update_importance()
    alloc.prune_to(8)
    pattern = rank_pattern(model)
    assert alloc.finalize() is None and alloc.frozen and rank_pattern(model) == pattern


def test_scores_before_any_update_are_zero_for_every_layer() -> None:
    model = toy(r_max=6, depth=3)
    alloc = RankAllocator(model, target_rank=2, schedule=EventSchedule((1,)))
    scores = alloc.scores()
    assert list(scores) == list(adapter_modules(model))
    assert all(torch.equal(s, torch.zeros(6)) for s in scores.values())


def test_equal_scores_keep_the_first_triplets_in_layer_then_component_order() -> None:
    """All scores equal: the stable sort keeps the earliest live triplets, reproducibly."""
    model = toy(r_max=6, depth=3)
    alloc = RankAllocator(model, target_rank=1, schedule=EventSchedule((1,)))
    for layer in adapter_modules(model).values():
        with torch.no_grad():
            for p in (layer.lora_lambda, layer.lora_P, layer.lora_Q):
                p.fill_(1.0)
                p.grad = torch.ones_like(p)
    alloc.update_importance()
    alloc.prune_to(8)
    assert rank_pattern(model) == {
        "blocks.0.attn.qkv": [1] * 6,
        "blocks.1.attn.qkv": [1, 1, 0, 0, 0, 0],
        "blocks.2.attn.qkv": [0] * 6,
    }
    adapter_modules(model)["blocks.0.attn.qkv"].set_rank_mask(torch.tensor([0, 1, 1, 1, 1, 1]))
    alloc.prune_to(5)
    assert rank_pattern(model)["blocks.0.attn.qkv"] == [0, 1, 1, 1, 1, 1]
    assert total_rank(model) == 5


def test_default_ema_factors_are_the_papers_0_85() -> None:
    model = toy(depth=2)
    default = RankAllocator(model, target_rank=4, schedule=EventSchedule((9,)))
    explicit = RankAllocator(model, 4, EventSchedule((9,)), beta1=0.85, beta2=0.85)
    for seed in range(2):
        set_grads(model, [1.0, 2.0], seed=seed)
        default.update_importance()
        explicit.update_importance()
    for name, score in explicit.scores().items():
        assert torch.equal(default.scores()[name], score)


def test_non_finite_importance_counts_as_zero() -> None:
    """One overflowed step (NaN or inf gradient under AMP) must not poison the EMAs: that
    entry contributes I = 0, exactly as a zero gradient would."""
    model = toy(depth=1)
    layer = adapter_modules(model)["blocks.0.attn.qkv"]
    set_grads(model, [1.0])
    clean = RankAllocator(model, target_rank=4, schedule=EventSchedule((9,)))
    dirty = RankAllocator(model, target_rank=4, schedule=EventSchedule((9,)))
    layer.lora_lambda.grad[1] = 0.0
    layer.lora_P.grad[0, 2] = 0.0
    clean.update_importance()
    layer.lora_lambda.grad[1] = float("nan")
    layer.lora_P.grad[0, 2] = float("inf")
    dirty.update_importance()
    name = "blocks.0.attn.qkv"
    assert torch.isfinite(dirty.scores()[name]).all()
    assert torch.allclose(dirty.scores()[name], clean.scores()[name], rtol=0, atol=0)


def test_importance_emas_keep_no_autograd_graph() -> None:
    """P, Q and Lambda require grad; an EMA built from them with autograd on would hold a
    graph that grows every step (and keeps every step's gradients alive)."""
    model = toy(depth=1)
    alloc = RankAllocator(model, target_rank=4, schedule=EventSchedule((9,)))
    for seed in range(2):
        set_grads(model, [1.0], seed=seed)
        alloc.update_importance()
    ema = alloc.state_dict()["ema"]  # .cpu() of a CPU tensor is the tensor itself
    tensors = [t for layer in ema.values() for pair in layer.values() for t in pair]
    assert tensors and not any(t.requires_grad or t.grad_fn is not None for t in tensors)
    assert not any(s.requires_grad for s in alloc.scores().values())
