"""Stage 0 (base), Stage 1 (AdaLoRA) and Stage 2 (QAT): parameter choices + loop hooks.

The shared loop (``trainer.training.loop``) does the stepping; a stage decides what trains, at which
learning rate, what the loss adds, and what is exported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from engine.adalora import (
    AdaLoraConfig,
    EventSchedule,
    RankAllocator,
    adalora_parameters,
    adapter_modules,
    freeze_rank_masks,
    lambda_parameters,
    orthogonal_regularizer,
    rank_pattern,
    wrap_adalora,
)
from engine.errors import TrainingError
from engine.models import LoadedModel, remember_adalora_config, save_sam_folder
from engine.sam import (
    SamConfig,
    adds_hires,
    build_sam,
    count_parameters,
    deepens,
    grow_depth,
    grow_hires,
)
from trainer.training.loop import History, StageHooks

PAPER_PRUNE_EPOCHS = (3, 7, 12)


@dataclass
class BaseStageConfig:
    """Stage 0: every parameter trains (from scratch or from a checkpoint)."""

    lr: float = 4e-4
    storage_dtype: str = "float32"


@dataclass
class Stage1Config:
    """Stage 1: AdaLoRA on the encoder's qkv, mask decoder and prompt encoder fully fine-tuned.

    The paper's learning rates (5e-5 adapters, 2e-5 decoder) are for SAM ViT-B on 64k images;
    Lambda starts at zero, so on a few dozen corrected images those rates barely move it.
    Our defaults are higher; ``preset="paper"`` restores the paper's numbers.
    """

    adapter_lr: float = 1e-3
    decoder_lr: float = 1e-4
    r_max: int = 48
    target_rank: int = 32
    ortho_weight: float = 0.003
    include_proj_mlp: bool = False
    prune_epochs: tuple[int, ...] = PAPER_PRUNE_EPOCHS
    storage_dtype: str = "float32"

    @classmethod
    def paper(cls) -> Stage1Config:
        return cls(adapter_lr=5e-5, decoder_lr=2e-5)


@dataclass
class Stage2Config:
    """Stage 2: fake-quant per the INT8 selection, masks frozen, Lambda trained (paper 1e-6)."""

    lambda_lr: float = 1e-6
    train_decoder: bool = False
    decoder_lr: float = 1e-5
    selection: dict[str, Any] = field(default_factory=dict)


def start_model(base: LoadedModel | None, config: SamConfig | None) -> tuple[torch.nn.Module, SamConfig]:
    """The model a stage trains: ``base`` as loaded, a new one of architecture ``config``, or
    ``base`` grown into ``config``, its masks the same at the start: by the hi-res detail path
    (:func:`engine.sam.hires.grow_hires`; the input normalisation may change with it, which
    training adapts to) or by encoder blocks appended (:func:`engine.sam.deepen.grow_depth`)."""
    if base is not None:
        if config is None or config == replace(base.config, name=config.name):
            return base.sam, base.config
        if adds_hires(base.config, config):
            return grow_hires(base.sam, build_sam(config)), config
        if deepens(base.config, config):
            return grow_depth(base.sam, build_sam(config)), config
        raise TrainingError(
            f"--arch {config.name} is not the architecture of {base.name} ({base.config.name}); a model "
            "grows only by the hi-res path (compact -> compact-hr) or by blocks (compact-hr -> compact-hr-d12)"
        )
    if config is None:
        raise TrainingError("give a model to start from (--model) or an architecture (--arch)")
    torch.manual_seed(0)
    return build_sam(config), config


def _export(model, config, storage_dtype: str, provenance: dict[str, Any]):
    def export_best(path: Path, metrics: dict[str, Any]) -> None:
        save_sam_folder(
            path, model, config, storage_dtype=storage_dtype,
            extra_meta={"name": path.parent.name, "provenance": provenance, "metrics": metrics},
        )

    return export_best


def base_stage(model, config: SamConfig, cfg: BaseStageConfig, provenance: dict[str, Any]):
    """All parameters in one group; the best epoch is saved as an FP32 model folder."""
    for p in model.parameters():
        p.requires_grad_(True)
    groups = [{"params": list(model.parameters()), "lr": cfg.lr, "name": "all"}]
    prov = {**provenance, "stage_config": asdict(cfg)}
    return groups, StageHooks(export_best=_export(model, config, cfg.storage_dtype, prov))


def scaled_prune_epochs(epochs: int, paper: tuple[int, ...] = PAPER_PRUNE_EPOCHS) -> tuple[int, ...]:
    """The paper prunes at epochs 3, 7, 12 of ~15; keep those fractions for other lengths."""
    if epochs >= 15:
        return paper
    scaled = sorted({max(1, min(epochs, round(e * epochs / 15))) for e in paper})
    return tuple(scaled)


def stage1(model, config: SamConfig, cfg: Stage1Config, epochs: int, steps_per_epoch: int,
           provenance: dict[str, Any]):
    """AdaLoRA adapters (trainable P, Q, Lambda) + decoder; rank pruning at ``prune_epochs``."""
    if adapter_modules(model):
        raise TrainingError("the model already has AdaLoRA adapters: Stage 1 starts from an FP32 base model")
    for p in model.parameters():
        p.requires_grad_(False)
    ada = AdaLoraConfig(r_max=cfg.r_max, target_rank=cfg.target_rank, ortho_weight=cfg.ortho_weight,
                        include_proj_mlp=cfg.include_proj_mlp)
    wrapped = wrap_adalora(model, ada)  # the default pattern only matches encoder blocks
    remember_adalora_config(model, ada)  # target rank and ortho weight go into model.json
    # The prompt encoder trains with the decoder: a base trained on boxes alone has never
    # seen what a point or a previous mask means (both are SAM's prompts, a few thousand weights).
    decoder_params = list(model.mask_decoder.parameters())
    prompt_params = list(model.prompt_encoder.parameters())
    for p in decoder_params + prompt_params:
        p.requires_grad_(True)
    prune = tuple(e for e in cfg.prune_epochs if e <= epochs) or (epochs,)
    schedule = EventSchedule.from_epochs(list(prune), steps_per_epoch)
    allocator = RankAllocator.from_config(model, ada, schedule)
    groups = [
        {"params": adalora_parameters(model), "lr": cfg.adapter_lr, "name": "adapters", "weight_decay": 0.0},
        {"params": decoder_params, "lr": cfg.decoder_lr, "name": "decoder"},
        {"params": prompt_params, "lr": cfg.adapter_lr, "name": "prompt_encoder", "weight_decay": 0.0},
    ]

    def after_backward(step: int) -> dict[str, Any] | None:
        event = allocator.step(step)
        if event is None:
            return None
        return {"budget": event.budget, "ranks": event.ranks, "final": event.final}

    def on_finish(run_dir: Path, history: History) -> dict[str, Any]:
        return {"rank_pattern_layers": len(rank_pattern(model)), "adapted": len(wrapped)}

    prov = {**provenance, "stage_config": asdict(cfg), "prune_epochs": list(prune)}
    hooks = StageHooks(
        extra_loss=lambda m: cfg.ortho_weight * orthogonal_regularizer(model),
        after_backward=after_backward,
        export_best=_export(model, config, cfg.storage_dtype, prov),
        state=allocator.state_dict,
        load_state=allocator.load_state_dict,
        eligible_for_best=lambda epoch: epoch >= max(prune),
        on_finish=on_finish,
    )
    return groups, hooks


def stage2(model, config: SamConfig, cfg: Stage2Config, provenance: dict[str, Any]):
    """Fake-quant inserted per the INT8 selection, rank masks frozen, Lambda (and optionally
    the decoder) trained; the best epoch is exported as an INT8 model folder at the end."""
    from engine.models import export_int8
    from engine.quant import QuantSelection, insert_fake_quant, remove_fake_quant

    if not adapter_modules(model):
        raise TrainingError("Stage 2 starts from a Stage 1 model (with AdaLoRA adapters); this model has none")
    for p in model.parameters():
        p.requires_grad_(False)
    freeze_rank_masks(model)
    selection = QuantSelection.from_dict(cfg.selection) if cfg.selection else QuantSelection()
    quantized = insert_fake_quant(model, selection)
    for p in lambda_parameters(model):
        p.requires_grad_(True)
    groups = [{"params": lambda_parameters(model), "lr": cfg.lambda_lr, "name": "lambda", "weight_decay": 0.0}]
    if cfg.train_decoder:
        dec = [p for p in model.mask_decoder.parameters()]
        for p in dec:
            p.requires_grad_(True)
        groups.append({"params": dec, "lr": cfg.decoder_lr, "name": "decoder"})
    prov = {**provenance, "stage_config": asdict(cfg), "int8_layers": len(quantized)}

    def export_best(path: Path, metrics: dict[str, Any]) -> None:
        save_sam_folder(path, model, config, extra_meta={
            "name": path.parent.name, "provenance": prov, "metrics": metrics})

    def on_finish(run_dir: Path, history: History) -> dict[str, Any]:
        from engine.models import load_model_folder

        best = load_model_folder(run_dir / "best")
        remove_fake_quant(best.sam)
        out = export_int8(best.sam, config, run_dir / "int8", extra_meta={
            "name": run_dir.name, "provenance": prov, "metrics": best.meta.get("metrics", {})})
        return {"int8_model": str(out)}

    hooks = StageHooks(export_best=export_best, on_finish=on_finish)
    return groups, hooks


def trainable_summary(model: torch.nn.Module) -> dict[str, int]:
    return {"trainable_params": count_parameters(model, trainable_only=True),
            "total_params": count_parameters(model)}
