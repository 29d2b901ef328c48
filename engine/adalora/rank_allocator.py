"""Importance-driven global rank budget for AdaLoRA (paper Sec. 2.2; AdaLoRA Sec. 3.2-3.3).

The allocator is fed by the training loop, never by the layers. Per optimizer step::

    loss.backward()
    optimizer.step()
    allocator.step(global_step)     # grads still present: before optimizer.zero_grad()
    optimizer.zero_grad()

``global_step`` counts optimizer steps from 1 (the first call is step 1). With gradient
accumulation call it once per optimizer step. Under DDP the gradients are all-reduced
before the call, so every rank computes the same scores and the same masks.

Importance of triplet i of one layer (all EMAs per entry, updated every call)::

    I(w)    = |w * dL/dw|                          per entry of Lambda, P and Q
    Ibar    = beta1 * Ibar + (1 - beta1) * I        smoothed sensitivity
    Ubar    = beta2 * Ubar + (1 - beta2) * |I - Ibar|   uncertainty
    s(w)    = Ibar * Ubar
    S_i     = s(lambda_i) + mean_j s(P[j, i]) + mean_j s(Q[i, j])

The budget is global: the top-B triplets over *all* adapted layers survive, so layers
end with different ranks. Masks only ever shrink: a pruned triplet has ``Lambda*m = 0``,
so its gradients are exactly zero and its score is stale; it is excluded from the
ranking rather than revived on stale evidence. The pruned ``Lambda_i`` is left as it is
(it has no effect on the output); :func:`engine.adalora.model.freeze_rank_masks` zeroes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from engine.adalora.layer import AdaLoraConfig, AdaLoraLinear
from engine.adalora.model import adapter_modules


class RankSchedule(Protocol):
    """When, and down to which global budget, the allocator prunes."""

    def budget(self, step: int, initial: int, target: int) -> int:
        """Global number of live triplets allowed at ``step``."""
        ...

    def allocation_due(self, step: int) -> bool:
        """Whether the allocator may prune at ``step`` (if over budget)."""
        ...

    def is_final(self, step: int) -> bool:
        """From this step on the mask is fixed at the target budget."""
        ...


@dataclass(frozen=True)
class EventSchedule:
    """The budget drops in equal steps at the listed global steps (paper: the ends of
    epochs 3, 7 and 12); the last event reaches the target and freezes the mask.

    Event k of K allows ``initial - floor((initial - target) * k / K)`` triplets.
    """

    steps: tuple[int, ...]

    def __post_init__(self) -> None:
        steps = tuple(int(s) for s in self.steps)
        if not steps or any(b <= a for a, b in zip(steps, steps[1:], strict=False)) or steps[0] < 1:
            raise ValueError(
                f"prune steps must be a non-empty increasing list of steps >= 1, got {steps}"
            )
        object.__setattr__(self, "steps", steps)

    @classmethod
    def from_epochs(
        cls, epochs: tuple[int, ...] | list[int], steps_per_epoch: int
    ) -> EventSchedule:
        """Prune at the end of each listed (1-based) epoch: step ``epoch * steps_per_epoch``."""
        return cls(tuple(int(e) * steps_per_epoch for e in epochs))

    def budget(self, step: int, initial: int, target: int) -> int:
        k = sum(1 for s in self.steps if s <= step)
        return initial - (initial - target) * k // len(self.steps)

    def allocation_due(self, step: int) -> bool:
        # The budget itself only changes at events, so pruning happens exactly there
        # (or at the first call after one, if the trainer skipped that step).
        return True

    def is_final(self, step: int) -> bool:
        return step >= self.steps[-1]


@dataclass(frozen=True)
class CubicSchedule:
    """AdaLoRA's schedule: full budget for ``warmup_steps``, a cubic decrease to the
    target until ``total_steps - final_steps``, then fixed (mask frozen).

    ``budget = target + (initial - target) * (1 - (t - warmup) / (total - final - warmup))^3``
    (floored), pruned every ``interval`` steps. Monotone non-increasing in ``t``.
    """

    total_steps: int
    warmup_steps: int = 0
    final_steps: int = 0
    interval: int = 1

    def __post_init__(self) -> None:
        if self.warmup_steps < 0 or self.final_steps < 0 or self.interval < 1:
            raise ValueError("warmup_steps and final_steps must be >= 0 and interval >= 1")
        if self.warmup_steps + self.final_steps >= self.total_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) + final_steps ({self.final_steps}) must be "
                f"below total_steps ({self.total_steps}) to leave room for pruning"
            )

    @property
    def _decay_end(self) -> int:
        return self.total_steps - self.final_steps

    def budget(self, step: int, initial: int, target: int) -> int:
        if step <= self.warmup_steps:
            return initial
        if step >= self._decay_end:
            return target
        remaining = 1.0 - (step - self.warmup_steps) / (self._decay_end - self.warmup_steps)
        return int(target + (initial - target) * remaining**3)

    def allocation_due(self, step: int) -> bool:
        if step <= self.warmup_steps:
            return False
        return (step - self.warmup_steps) % self.interval == 0 or step >= self._decay_end

    def is_final(self, step: int) -> bool:
        return step >= self._decay_end


@dataclass(frozen=True)
class AllocationEvent:
    """What one pruning did; the trainer logs it (and the ranks) as a progress event."""

    step: int | None
    budget: int
    ranks: dict[str, int]
    final: bool


class RankAllocator:
    """Keeps the importance EMAs of every adapter and prunes to a global budget.

    Args:
        model: The wrapped model (unwrapped from DDP is best: names are then the
            ``rank_pattern`` names). Adapters are collected once, here.
        target_rank: Average live rank per layer at the end; budget ``target_rank * n``.
        schedule: :class:`EventSchedule` or :class:`CubicSchedule`.
        beta1, beta2: EMA factors for sensitivity and uncertainty (paper/AdaLoRA: 0.85).

    The initial budget is ``sum(r_max)`` over layers, so a resumed run (masks already
    pruned, EMAs restored via :meth:`load_state_dict`) follows the same budget curve.
    """

    def __init__(
        self,
        model: nn.Module,
        target_rank: int,
        schedule: RankSchedule,
        beta1: float = 0.85,
        beta2: float = 0.85,
    ) -> None:
        self.adapters: dict[str, AdaLoraLinear] = adapter_modules(model)
        if not self.adapters:
            raise ValueError("model has no AdaLoRA adapters; call wrap_adalora first")
        if not all(0 <= target_rank <= m.r_max for m in self.adapters.values()):
            raise ValueError(f"target_rank {target_rank} exceeds some layer's r_max")
        self.schedule = schedule
        self.beta1 = beta1
        self.beta2 = beta2
        self.initial_budget = sum(m.r_max for m in self.adapters.values())
        self.target_budget = int(target_rank) * len(self.adapters)
        self.frozen = False
        # name -> {"lambda"|"P"|"Q": (Ibar, Ubar)}, created lazily on the grads' device.
        self._ema: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}

    @classmethod
    def from_config(
        cls, model: nn.Module, config: AdaLoraConfig, schedule: RankSchedule, **kwargs: Any
    ) -> RankAllocator:
        """Allocator with ``target_rank`` taken from the adapter config."""
        return cls(model, config.target_rank, schedule, **kwargs)

    # ----------------------------------------------------------------- importance
    @torch.no_grad()
    def update_importance(self) -> None:
        """Fold the current gradients into the EMAs (call while grads are present).

        Raises:
            RuntimeError: no adapter tensor has a gradient, which means the call came
                before ``backward()`` or after ``zero_grad()``.
        """
        tensors = {
            name: {"lambda": m.lora_lambda, "P": m.lora_P, "Q": m.lora_Q}
            for name, m in self.adapters.items()
        }
        if all(p.grad is None for group in tensors.values() for p in group.values()):
            raise RuntimeError(
                "RankAllocator.step needs adapter gradients: call it after backward() and "
                "before optimizer.zero_grad()"
            )
        for name, group in tensors.items():
            state = self._ema.setdefault(name, {})
            for key, p in group.items():
                ipt = (p * p.grad).abs() if p.grad is not None else torch.zeros_like(p)
                ipt = torch.nan_to_num(ipt.float(), nan=0.0, posinf=0.0)
                ibar, ubar = state.get(key, (torch.zeros_like(ipt), torch.zeros_like(ipt)))
                ibar = self.beta1 * ibar + (1 - self.beta1) * ipt
                ubar = self.beta2 * ubar + (1 - self.beta2) * (ipt - ibar).abs()
                state[key] = (ibar, ubar)

    def scores(self) -> dict[str, torch.Tensor]:
        """Name -> triplet importance ``S``, shape (r_max,), on CPU (zeros before any update)."""
        out = {}
        for name, m in self.adapters.items():
            state = self._ema.get(name)
            if state is None:
                out[name] = torch.zeros(m.r_max)
                continue
            s = {k: (ibar * ubar).cpu() for k, (ibar, ubar) in state.items()}
            # P is (out, r): column i -> mean over dim 0; Q is (r, in): row i -> dim 1.
            out[name] = s["lambda"] + s["P"].mean(dim=0) + s["Q"].mean(dim=1)
        return out

    # ----------------------------------------------------------------- pruning
    def budget(self, step: int) -> int:
        """Global number of live triplets the schedule allows at ``step``."""
        return self.schedule.budget(step, self.initial_budget, self.target_budget)

    def active_count(self) -> int:
        """Current number of live triplets over all layers."""
        return sum(m.rank() for m in self.adapters.values())

    def ranks(self) -> dict[str, int]:
        """Name -> live rank of each layer."""
        return {name: m.rank() for name, m in self.adapters.items()}

    @torch.no_grad()
    def prune_to(self, budget: int, step: int | None = None) -> AllocationEvent:
        """Keep exactly the ``budget`` most important live triplets over all layers.

        Ties are broken by position (layer order, then component index) through a
        stable sort, so ``sum(masks) == budget`` holds exactly and reproducibly.
        """
        if budget > self.active_count():
            raise ValueError(f"budget {budget} exceeds the {self.active_count()} live triplets")
        names = list(self.adapters)
        scores = self.scores()
        flat = torch.cat(
            [
                torch.where(self.adapters[n].rank_mask.cpu() > 0, scores[n], float("-inf"))
                for n in names
            ]
        )
        keep = torch.argsort(flat, descending=True, stable=True)[:budget]
        new_mask = torch.zeros_like(flat)
        new_mask[keep] = 1.0
        offset = 0
        for n in names:
            m = self.adapters[n]
            m.set_rank_mask(new_mask[offset : offset + m.r_max])
            offset += m.r_max
        return AllocationEvent(step=step, budget=budget, ranks=self.ranks(), final=self.frozen)

    def step(self, global_step: int) -> AllocationEvent | None:
        """Update importances, then prune if the schedule says so.

        Returns:
            The pruning that happened at this step, or None. After the schedule's final
            step (or :meth:`finalize`) this is a no-op: masks stay fixed.
        """
        if self.frozen:
            return None
        self.update_importance()
        if self.schedule.is_final(global_step):
            return self.finalize(global_step)
        budget = self.budget(global_step)
        if self.schedule.allocation_due(global_step) and budget < self.active_count():
            return self.prune_to(budget, global_step)
        return None

    def finalize(self, step: int | None = None) -> AllocationEvent | None:
        """Prune to the target budget if still above it, then freeze the masks for good.

        The trainer calls this at the end of Stage 1 in case training stopped before the
        schedule finished, so the exported model always meets the budget exactly.
        """
        if self.frozen:
            return None
        self.frozen = True
        if self.active_count() > self.target_budget:
            return self.prune_to(self.target_budget, step)
        return None

    # ----------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        """EMAs and the frozen flag, for the trainer's checkpoint (``torch.save``-able)."""
        return {
            "frozen": self.frozen,
            "ema": {
                n: {k: (i.cpu(), u.cpu()) for k, (i, u) in s.items()} for n, s in self._ema.items()
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; EMAs move to each adapter's device."""
        unknown = sorted(set(state["ema"]) - set(self.adapters))
        if unknown:
            raise ValueError(f"allocator state names layers the model does not have: {unknown}")
        self.frozen = bool(state["frozen"])
        self._ema = {}
        for n, s in state["ema"].items():
            dev = self.adapters[n].lora_lambda.device
            self._ema[n] = {k: (i.to(dev), u.to(dev)) for k, (i, u) in s.items()}
