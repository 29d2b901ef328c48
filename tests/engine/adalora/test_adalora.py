"""AdaLoRA layer, wrapping, regulariser, Stage 2 freezing, merge and rank-pattern I/O."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)
from torch import nn

from engine.adalora import (
    AdaLoraConfig,
    AdaLoraLinear,
    adalora_config_from_dict,
    adalora_config_to_dict,
    adalora_parameters,
    adapter_modules,
    apply_rank_pattern,
    count_trainable,
    freeze_rank_masks,
    lambda_parameters,
    merge_adalora,
    orthogonal_regularizer,
    rank_pattern,
    wrap_adalora,
)
from engine.errors import ModelLoadError

QKV = ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]


def small_encoder(seed: int = 0) -> ImageEncoderViT:
    torch.manual_seed(seed)
    return ImageEncoderViT(
        img_size=64,
        patch_size=16,
        embed_dim=64,
        depth=2,
        num_heads=2,
        window_size=2,
        global_attn_indexes=(1,),
        out_chans=32,
    ).eval()


def small_sam() -> Sam:
    return Sam(
        image_encoder=small_encoder(0).train(),
        prompt_encoder=PromptEncoder(
            embed_dim=32, image_embedding_size=(4, 4), input_image_size=(64, 64), mask_in_chans=4
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=32,
            transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=64, num_heads=2),
            iou_head_hidden_dim=16,
        ),
    )


def randomise_lambda(model: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lambda_parameters(model):
            p.copy_(torch.randn(p.shape, generator=g))


def image(seed: int = 2) -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_delta_weight_equals_scaled_p_diag_masked_lambda_q_by_hand() -> None:
    torch.manual_seed(0)
    layer = AdaLoraLinear(nn.Linear(5, 4), r_max=3, alpha=6.0)  # scale = 2
    with torch.no_grad():
        layer.lora_lambda.copy_(torch.tensor([0.5, -1.5, 2.0]))
    layer.set_rank_mask(torch.tensor([1.0, 0.0, 1.0]))
    P, Q, lam, m = layer.lora_P, layer.lora_Q, layer.lora_lambda, layer.rank_mask
    expected = torch.zeros(4, 5)
    for o in range(4):
        for i in range(5):
            expected[o, i] = 2.0 * sum(P[o, k] * lam[k] * m[k] * Q[k, i] for k in range(3))
    assert torch.allclose(layer.delta_weight(), expected, atol=1e-6)

    x = torch.randn(7, 5)
    base_out = x @ layer.base.weight.t() + layer.base.bias
    assert torch.allclose(layer(x), base_out + x @ expected.t(), atol=1e-6)


def test_zero_init_makes_wrapped_encoder_output_identical_to_base() -> None:
    base = small_encoder()
    wrapped = copy.deepcopy(base)
    wrap_adalora(wrapped, AdaLoraConfig(r_max=8, target_rank=4))
    assert all(torch.all(p == 0) for p in lambda_parameters(wrapped))
    with torch.no_grad():
        assert torch.equal(wrapped(image()), base(image()))


def test_default_config_wraps_only_qkv_and_freezes_base() -> None:
    enc = small_encoder()
    names = wrap_adalora(enc, AdaLoraConfig(r_max=8, target_rank=4))
    assert names == QKV
    assert list(adapter_modules(enc)) == QKV
    assert isinstance(enc.blocks[0].attn.proj, nn.Linear)
    assert isinstance(enc.blocks[0].mlp.lin1, nn.Linear)
    layer = enc.blocks[0].attn.qkv
    assert not layer.base.weight.requires_grad and not layer.base.bias.requires_grad
    assert (
        layer.lora_P.requires_grad
        and layer.lora_Q.requires_grad
        and layer.lora_lambda.requires_grad
    )
    assert enc.blocks[0].attn.proj.weight.requires_grad  # the rest is the trainer's business


def test_proj_mlp_option_adds_attention_proj_and_mlp_layers() -> None:
    enc = small_encoder()
    names = wrap_adalora(enc, AdaLoraConfig(r_max=8, target_rank=4, include_proj_mlp=True))
    expected = [
        f"blocks.{b}.{n}" for b in (0, 1) for n in ("attn.qkv", "attn.proj", "mlp.lin1", "mlp.lin2")
    ]
    assert sorted(names) == sorted(expected)


def test_on_full_sam_only_image_encoder_layers_are_targeted() -> None:
    sam = small_sam()
    assert wrap_adalora(copy.deepcopy(sam), AdaLoraConfig(r_max=4, target_rank=2)) == [
        f"image_encoder.{n}" for n in QKV
    ]
    names = wrap_adalora(sam, AdaLoraConfig(r_max=4, target_rank=2, include_proj_mlp=True))
    assert len(names) == 8 and all(n.startswith("image_encoder.blocks.") for n in names)


def test_state_dict_keys_keep_base_and_adapter_tensors_reachable() -> None:
    enc = small_encoder()
    wrap_adalora(enc, AdaLoraConfig(r_max=8, target_rank=4))
    keys = set(enc.state_dict())
    for suffix in ("base.weight", "base.bias", "lora_P", "lora_Q", "lora_lambda", "rank_mask"):
        assert f"blocks.1.attn.qkv.{suffix}" in keys
    layer = enc.blocks[1].attn.qkv
    assert layer.lora_P.shape == (192, 8) and layer.lora_Q.shape == (8, 64)
    assert layer.lora_lambda.shape == (8,)
    assert "rank_mask" in dict(layer.named_buffers())
    assert "rank_mask" not in dict(layer.named_parameters())


def test_pattern_that_matches_nothing_raises_model_load_error() -> None:
    with pytest.raises(ModelLoadError, match="no_such_layer"):
        wrap_adalora(small_encoder(), AdaLoraConfig(target_pattern=r"no_such_layer"))


def test_parameter_helpers_count_adapter_tensors() -> None:
    enc = small_encoder()
    enc.requires_grad_(False)
    wrap_adalora(enc, AdaLoraConfig(r_max=8, target_rank=4))
    per_layer = 192 * 8 + 8 * 64 + 8
    assert count_trainable(enc) == 2 * per_layer
    assert sum(p.numel() for p in adalora_parameters(enc)) == 2 * per_layer
    assert [p.shape for p in lambda_parameters(enc)] == [(8,), (8,)]


def test_rank_mask_is_a_buffer_that_never_gets_gradient() -> None:
    enc = small_encoder()
    wrap_adalora(enc, AdaLoraConfig(r_max=8, target_rank=4))
    randomise_lambda(enc)
    enc(image()).sum().backward()
    layer = enc.blocks[0].attn.qkv
    assert not layer.rank_mask.requires_grad and layer.rank_mask.grad is None
    assert layer.lora_lambda.grad is not None


@pytest.mark.parametrize("with_stage1_momentum", [False, True])
def test_frozen_masks_keep_masked_lambda_exactly_zero_under_adamw(
    with_stage1_momentum: bool,
) -> None:
    enc = small_encoder()
    wrap_adalora(enc, AdaLoraConfig(r_max=8, target_rank=4))
    randomise_lambda(enc)
    params = adalora_parameters(enc)
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    if with_stage1_momentum:  # Stage 1 steps leave momentum on every lambda entry
        for _ in range(3):
            opt.zero_grad()
            enc(image()).pow(2).mean().backward()
            opt.step()
    mask = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0], dtype=torch.float32)
    for layer in adapter_modules(enc).values():
        layer.set_rank_mask(mask)
    pattern_before = rank_pattern(enc)

    if with_stage1_momentum:
        freeze_rank_masks(enc, opt)
    else:
        freeze_rank_masks(enc)
        opt = torch.optim.AdamW(lambda_parameters(enc), lr=1e-2, weight_decay=0.1)
    for step in range(20):
        opt.zero_grad()
        enc(image(seed=step)).pow(2).mean().backward()
        opt.step()

    assert rank_pattern(enc) == pattern_before
    for layer in adapter_modules(enc).values():
        lam = layer.lora_lambda.detach()
        assert torch.all(lam[mask == 0] == 0)
        assert torch.all(lam[mask == 1] != 0)


def test_orthogonality_loss_decreases_under_its_own_gradient() -> None:
    enc = small_encoder()
    wrap_adalora(enc, AdaLoraConfig(r_max=8, target_rank=4, init_std=0.2))
    opt = torch.optim.SGD(adalora_parameters(enc), lr=1e-3)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = orthogonal_regularizer(enc)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))


def test_orthogonality_loss_is_zero_for_orthonormal_bases() -> None:
    layer = nn.Module()
    layer.qkv = AdaLoraLinear(nn.Linear(6, 10), r_max=4, alpha=4.0)
    with torch.no_grad():
        layer.qkv.lora_P.copy_(torch.linalg.qr(torch.randn(10, 4))[0])
        layer.qkv.lora_Q.copy_(torch.linalg.qr(torch.randn(6, 4))[0].t())
    assert orthogonal_regularizer(layer).item() == pytest.approx(0.0, abs=1e-10)


def test_merge_gives_same_encoder_output_within_1e5_relative() -> None:
    enc = small_encoder()
    wrap_adalora(enc, AdaLoraConfig(r_max=8, target_rank=4, include_proj_mlp=True))
    randomise_lambda(enc)
    enc.blocks[0].attn.qkv.set_rank_mask(torch.tensor([1, 1, 0, 1, 0, 1, 1, 0]))
    with torch.no_grad():
        before = enc(image())
        merge_adalora(enc)
        after = enc(image())
    assert not adapter_modules(enc)
    assert type(enc.blocks[0].attn.qkv) is nn.Linear
    assert not enc.blocks[0].attn.qkv.weight.requires_grad
    assert rel_err(after, before) < 1e-5
    assert rel_err(before, small_encoder()(image()).detach()) > 1e-3  # the adapter did matter


def test_rank_pattern_json_round_trip_gives_identical_outputs() -> None:
    config = AdaLoraConfig(r_max=8, target_rank=4)
    trained = small_encoder()
    wrap_adalora(trained, config)
    randomise_lambda(trained)
    trained.blocks[0].attn.qkv.set_rank_mask(torch.tensor([1, 0, 0, 1, 1, 0, 1, 0]))
    trained.blocks[1].attn.qkv.set_rank_mask(torch.tensor([0, 1, 1, 1, 1, 1, 1, 0]))
    stored = json.dumps(
        {"adalora": adalora_config_to_dict(config), "rank_pattern": rank_pattern(trained)}
    )

    meta = json.loads(stored)
    fresh = small_encoder(seed=5)  # different random P, Q
    wrap_adalora(fresh, adalora_config_from_dict(meta["adalora"]))
    apply_rank_pattern(fresh, meta["rank_pattern"])
    weights = {k: v for k, v in trained.state_dict().items() if not k.endswith("rank_mask")}
    fresh.load_state_dict(weights, strict=False)

    assert rank_pattern(fresh) == rank_pattern(trained)
    assert [m.rank() for m in adapter_modules(fresh).values()] == [4, 6]
    with torch.no_grad():
        assert torch.equal(fresh(image()), trained(image()))


def test_rank_pattern_for_other_layers_is_rejected() -> None:
    enc = small_encoder()
    wrap_adalora(enc, AdaLoraConfig(r_max=4, target_rank=2))
    with pytest.raises(ModelLoadError, match="blocks.1.attn.qkv"):
        apply_rank_pattern(enc, {"blocks.0.attn.qkv": [1, 1, 0, 0]})
    with pytest.raises(ModelLoadError, match="4 entries"):
        apply_rank_pattern(enc, {n: [1, 0] for n in QKV})


def test_config_dict_round_trip_and_unknown_key_rejected() -> None:
    config = AdaLoraConfig(r_max=12, target_rank=6, alpha=3.0, include_proj_mlp=True)
    data = json.loads(json.dumps(adalora_config_to_dict(config)))
    assert adalora_config_from_dict(data) == config
    assert config.scale == pytest.approx(0.25)
    with pytest.raises(ModelLoadError, match="rank_max"):
        adalora_config_from_dict({**data, "rank_max": 3})
    with pytest.raises(ValueError):
        AdaLoraConfig(r_max=8, target_rank=9)


def test_config_defaults_are_the_papers() -> None:
    """r_max 48 pruned to an average of 32, scale 1, only qkv, ortho weight 0.003 (paper 3.2)."""
    c = AdaLoraConfig()
    assert (c.r_max, c.target_rank, c.alpha, c.init_std) == (48, 32, 48.0, 0.02)
    assert (c.include_proj_mlp, c.target_pattern, c.ortho_weight) == (False, None, 0.003)
    assert c.scale == 1.0 and c.target_regex() == r"(?:^|\.)blocks\.\d+\.attn\.qkv$"
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.r_max = 8  # type: ignore[misc]
    assert AdaLoraConfig(target_pattern=r"mlp\.lin1$", include_proj_mlp=True).target_regex() == r"mlp\.lin1$"


@pytest.mark.parametrize("kwargs", [
    {"r_max": 1, "target_rank": 1}, {"r_max": 4, "target_rank": 0}, {"r_max": 4, "target_rank": 4},
])
def test_config_accepts_its_bounds(kwargs) -> None:
    assert AdaLoraConfig(**kwargs).r_max == kwargs["r_max"]


@pytest.mark.parametrize("data, message", [
    ({"r_max": 0, "target_rank": 0}, "r_max must be >= 1"),
    ({"r_max": 4, "target_rank": 5}, "target_rank must lie in"),
    ({"r_max": 4, "target_rank": -1}, "target_rank must lie in"),
    ({"r_max": "eight"}, "invalid"),  # TypeError inside __post_init__
    ({"target_pattern": "blocks.(qkv"}, "invalid"),  # re.error
])
def test_invalid_config_values_are_a_model_load_error(data, message) -> None:
    with pytest.raises(ModelLoadError, match=message):
        adalora_config_from_dict(data)


def test_layer_initialisation_follows_its_arguments() -> None:
    torch.manual_seed(0)
    layer = AdaLoraLinear(nn.Linear(300, 200), r_max=40, alpha=10.0, init_std=0.05)
    assert layer.scale == pytest.approx(0.25) and layer.r_max == 40
    assert (layer.in_features, layer.out_features) == (300, 200)
    assert layer.lora_P.std().item() == pytest.approx(0.05, rel=0.05)
    assert layer.lora_Q.std().item() == pytest.approx(0.05, rel=0.05)
    assert torch.equal(layer.lora_lambda, torch.zeros(40)) and torch.equal(layer.rank_mask, torch.ones(40))
    assert layer.rank() == 40 and "r_max=40, rank=40, scale=0.25\n" in repr(layer)
    default = AdaLoraLinear(nn.Linear(300, 200), r_max=40, alpha=40.0)
    assert default.lora_P.std().item() == pytest.approx(0.02, rel=0.05)


def test_adapter_stays_fp32_on_a_half_precision_base_and_returns_the_base_dtype() -> None:
    base = nn.Linear(6, 4).to(torch.bfloat16)
    layer = AdaLoraLinear(base, r_max=3, alpha=3.0)
    assert {t.dtype for t in (layer.lora_P, layer.lora_Q, layer.lora_lambda, layer.rank_mask)} == {torch.float32}
    with torch.no_grad():
        layer.lora_lambda.fill_(1.0)
    x = torch.randn(2, 6, dtype=torch.bfloat16)
    out = layer(x)
    assert out.dtype == torch.bfloat16
    expected = base(x).float() + x.float() @ layer.delta_weight().t()
    assert torch.allclose(out.float(), expected, atol=0.05)


def test_set_rank_mask_checks_size_and_values_and_keeps_the_buffer() -> None:
    layer = AdaLoraLinear(nn.Linear(5, 4), r_max=3, alpha=3.0)
    buffer = layer.rank_mask
    layer.set_rank_mask(torch.tensor([[1, 0, 1]]))  # any shape with r_max entries
    assert layer.rank_mask is buffer and buffer.dtype == torch.float32
    assert buffer.tolist() == [1.0, 0.0, 1.0] and layer.rank() == 2
    with pytest.raises(ValueError, match="needs 3 entries, got 2"):
        layer.set_rank_mask(torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="0 or 1"):
        layer.set_rank_mask(torch.tensor([1.0, 0.5, 1.0]))
    assert buffer.tolist() == [1.0, 0.0, 1.0]  # a refused mask changes nothing


def test_wrapping_again_never_wraps_an_adapters_own_base() -> None:
    enc = small_encoder()
    config = AdaLoraConfig(r_max=4, target_rank=2, target_pattern=r"attn\.qkv")
    assert wrap_adalora(enc, config) == QKV
    # the adapters' inner layers are named blocks.N.attn.qkv.base and match the pattern too
    with pytest.raises(ModelLoadError, match="matches the AdaLoRA target pattern"):
        wrap_adalora(enc, config)
    assert isinstance(enc.blocks[0].attn.qkv.base, nn.Linear)


def test_model_operations_refuse_a_model_without_adapters() -> None:
    for operation in (orthogonal_regularizer, freeze_rank_masks):
        with pytest.raises(ValueError, match="no AdaLoRA adapters"):
            operation(small_encoder())


def test_orthogonality_loss_is_the_mean_over_adapters_of_both_terms() -> None:
    holder = nn.Module()
    holder.a = AdaLoraLinear(nn.Linear(3, 2), r_max=2, alpha=2.0)
    holder.b = AdaLoraLinear(nn.Linear(3, 2), r_max=2, alpha=2.0)
    with torch.no_grad():
        holder.a.lora_P.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # P^T P - I = diag(0, 3): 9
        holder.a.lora_Q.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))  # orthonormal: 0
        holder.b.lora_P.copy_(torch.eye(2))  # 0
        holder.b.lora_Q.copy_(torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))  # Q Q^T - I = diag(1, 0): 1
    assert orthogonal_regularizer(holder).item() == pytest.approx((9.0 + 1.0) / 2)


def test_freeze_with_an_sgd_optimizer_clears_masked_momentum_and_its_hook_can_be_removed() -> None:
    enc = small_encoder()
    wrap_adalora(enc, AdaLoraConfig(r_max=4, target_rank=2))
    randomise_lambda(enc)
    opt = torch.optim.SGD(lambda_parameters(enc), lr=0.1, momentum=0.9)
    enc(image()).pow(2).mean().backward()
    opt.step()
    assert freeze_rank_masks(enc) is None
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0])
    for layer in adapter_modules(enc).values():
        layer.set_rank_mask(mask)
    handle = freeze_rank_masks(enc, opt)
    for layer in adapter_modules(enc).values():
        assert torch.all(layer.lora_lambda[mask == 0] == 0)
        momentum = opt.state[layer.lora_lambda]["momentum_buffer"]
        assert torch.all(momentum[mask == 0] == 0) and torch.all(momentum[mask == 1] != 0)
    layer = enc.blocks[0].attn.qkv
    with torch.no_grad():  # something outside the optimizer writes a masked entry ...
        layer.lora_lambda[1] = 5.0
    opt.zero_grad()
    enc(image()).pow(2).mean().backward()
    opt.step()
    assert layer.lora_lambda[1].item() == 0.0  # ... and the step's hook zeroes it again
    handle.remove()
    with torch.no_grad():
        layer.lora_lambda[1] = 5.0
    opt.step()
    assert layer.lora_lambda[1].item() == 5.0  # detached: the hook no longer runs


def test_rank_pattern_is_plain_ints_and_a_bad_entry_names_its_layer() -> None:
    enc = small_encoder()
    wrap_adalora(enc, AdaLoraConfig(r_max=3, target_rank=2))
    enc.blocks[1].attn.qkv.set_rank_mask(torch.tensor([0, 1, 1]))
    pattern = rank_pattern(enc)
    assert pattern == {QKV[0]: [1, 1, 1], QKV[1]: [0, 1, 1]}
    assert all(type(v) is int for row in pattern.values() for v in row)
    with pytest.raises(ModelLoadError, match=r"'blocks\.1\.attn\.qkv'.*0 or 1"):
        apply_rank_pattern(enc, {QKV[0]: [1, 0, 1], QKV[1]: [2, 0, 1]})
    with pytest.raises(ModelLoadError, match=r"without a layer \['blocks\.9\.attn\.qkv'\]"):
        apply_rank_pattern(enc, {**pattern, "blocks.9.attn.qkv": [1, 1, 1]})


@pytest.mark.parametrize("bias", [True, False])
def test_merge_keeps_bias_dtype_and_is_idempotent(bias: bool) -> None:
    holder = nn.Module()
    holder.fc = AdaLoraLinear(nn.Linear(6, 4, bias=bias).to(torch.bfloat16), r_max=3, alpha=3.0)
    with torch.no_grad():
        holder.fc.lora_lambda.copy_(torch.tensor([1.0, 2.0, 3.0]))
    holder.fc.set_rank_mask(torch.tensor([1, 0, 1]))
    expected = (holder.fc.base.weight.float() + holder.fc.delta_weight()).to(torch.bfloat16)
    bias_before = None if not bias else holder.fc.base.bias.clone()
    merge_adalora(holder)
    fc = holder.fc
    assert type(fc) is nn.Linear and fc.weight.dtype == torch.bfloat16
    assert torch.equal(fc.weight, expected)
    assert (fc.bias is None) if not bias else torch.equal(fc.bias, bias_before)
    assert not any(p.requires_grad for p in fc.parameters())
    merge_adalora(holder)
    assert holder.fc is fc
