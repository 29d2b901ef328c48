"""Fake quantisation numerics, straight-through gradients, fake-quant modules and selection."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from engine.adalora import AdaLoraConfig, wrap_adalora
from engine.errors import ModelLoadError
from engine.quant import (
    SELECTION_ATTR,
    FakeQuantConv2d,
    FakeQuantConvTranspose2d,
    FakeQuantLinear,
    QuantSelection,
    dequantize,
    fake_quant,
    fake_quant_per_token,
    fake_quant_weight,
    insert_fake_quant,
    quantize,
    quantize_per_token,
    quantize_weight,
    remove_fake_quant,
    select_layers,
    weight_scale,
)
from engine.quant.qat import token_scale
from engine.sam import build_sam
from tests.sam_factory import tiny_config


def tiny_sam(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_sam(tiny_config())


# -- numerics --------------------------------------------------------------------------------
def test_weight_scale_is_max_abs_over_127() -> None:
    w = torch.tensor([[0.3, -2.54], [1.0, 0.0]])
    assert weight_scale(w).item() == pytest.approx(2.54 / 127)
    assert weight_scale(w).dtype == torch.float32 and weight_scale(w).dim() == 0


def test_quantized_weight_is_int8_in_symmetric_range_with_extremes_at_127() -> None:
    w = torch.randn(64, 48) * 3
    q, scale = quantize_weight(w)
    assert q.dtype == torch.int8 and q.shape == w.shape
    assert int(q.min()) >= -127 and int(q.max()) <= 127
    assert int(q.abs().max()) == 127
    assert int(q.flatten()[w.abs().argmax()]) == (127 if w.flatten()[w.abs().argmax()] > 0 else -127)
    assert scale.item() == pytest.approx(w.abs().max().item() / 127)


def test_rounding_is_half_to_even() -> None:
    q = quantize(torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 126.5]), 1.0)
    assert q.tolist() == [0, 2, 2, 0, -2, 126]


def test_values_beyond_the_range_clamp_to_127() -> None:
    assert quantize(torch.tensor([300.0, -300.0]), 1.0).tolist() == [127, -127]


def test_rounding_error_is_at_most_half_a_step() -> None:
    w = torch.randn(256, 96)
    q, scale = quantize_weight(w)
    error = (dequantize(q, scale) - w).abs().max().item()
    assert error <= scale.item() / 2 * (1 + 1e-5)
    assert error > scale.item() / 4  # a real rounding happened, not a no-op


def test_per_token_scale_uses_each_rows_own_max() -> None:
    x = torch.tensor([[[1.0, -0.5, 0.25], [100.0, 3.0, -50.0]]])
    q, s = quantize_per_token(x)
    assert s.shape == (1, 2, 1)
    assert s.flatten().tolist() == pytest.approx([1 / 127, 100 / 127])
    assert q[0, 0].tolist() == [127, -64, 32]  # 63.5 -> 64 (half to even), 31.75 -> 32
    assert q[0, 1].tolist() == [127, 4, -64]  # 3.81 -> 4, -63.5 -> -64


def test_all_zero_input_quantises_to_zero_without_nan() -> None:
    x = torch.zeros(3, 8)
    q, s = quantize_per_token(x)
    assert torch.all(q == 0) and torch.all(torch.isfinite(s))
    assert torch.equal(fake_quant_weight(torch.zeros(4, 4)), torch.zeros(4, 4))


def test_scales_follow_small_tensors_and_floor_at_eps_over_127() -> None:
    # max|x| below 1 keeps its own scale (a floor of 1 would put these weights on a coarse grid)
    assert weight_scale(torch.tensor([[1e-3, -4e-3]])).item() == pytest.approx(4e-3 / 127, rel=1e-6)
    s = token_scale(torch.tensor([[2e-3, -1e-3], [0.0, 0.0]]))
    assert s.flatten().tolist() == pytest.approx([2e-3 / 127, 1e-12 / 127], rel=1e-6, abs=0)
    assert weight_scale(torch.zeros(3, 3)).item() == pytest.approx(1e-12 / 127, rel=1e-6, abs=0)


def test_fake_quant_equals_dequantised_quantisation() -> None:
    x = torch.randn(5, 7, 33)
    q, s = quantize_per_token(x)
    assert torch.equal(fake_quant_per_token(x), dequantize(q, s))


# -- straight-through gradients --------------------------------------------------------------
def test_straight_through_gradient_is_identity_inside_range_and_zero_outside() -> None:
    x = torch.tensor([-200.0, -127.4, -3.3, 0.0, 0.49, 50.6, 127.4, 128.0, 500.0], requires_grad=True)
    fake_quant(x, 1.0).backward(torch.arange(1.0, 10.0))  # scale 1: exact
    assert x.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 0.0, 0.0]


def test_straight_through_range_includes_127_5_exactly() -> None:
    # |x / s| <= 127.5 is inside (it rounds to the grid's end); the next float above is outside
    above = torch.nextafter(torch.tensor(127.5), torch.tensor(200.0)).item()
    x = torch.tensor([127.5, -127.5, above, -above], requires_grad=True)
    fake_quant(x, 1.0).backward(torch.ones(4))
    assert x.grad.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_weight_and_token_fake_quant_pass_gradients_straight_through() -> None:
    w = torch.randn(16, 8, requires_grad=True)
    g = torch.randn(16, 8)
    fake_quant_weight(w).backward(g)
    torch.testing.assert_close(w.grad, g, rtol=1e-6, atol=0)
    x = torch.randn(4, 8, requires_grad=True)
    fake_quant_per_token(x).backward(g[:4])
    torch.testing.assert_close(x.grad, g[:4], rtol=1e-6, atol=0)


def test_fake_quant_linear_gradients_are_the_ste_gradients() -> None:
    torch.manual_seed(0)
    layer = FakeQuantLinear(12, 6)
    x = torch.randn(3, 12, requires_grad=True)
    g = torch.randn(3, 6)
    layer(x).backward(g)
    fq_w = fake_quant_weight(layer.weight.detach())
    fq_x = fake_quant_per_token(x.detach())
    torch.testing.assert_close(x.grad, g @ fq_w, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.weight.grad, g.t() @ fq_x, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.bias.grad, g.sum(0))


# -- modules ---------------------------------------------------------------------------------
def test_fake_quant_linear_output_is_the_quantised_product() -> None:
    torch.manual_seed(1)
    plain = nn.Linear(20, 10)
    x = torch.randn(2, 5, 20)
    fq = FakeQuantLinear(20, 10)
    fq.load_state_dict(plain.state_dict())
    expected = nn.functional.linear(fake_quant_per_token(x), fake_quant_weight(plain.weight), plain.bias)
    torch.testing.assert_close(fq(x), expected, rtol=1e-5, atol=1e-6)
    assert not torch.equal(fq(x), plain(x))


def test_fake_quant_linear_without_bias_is_the_quantised_product() -> None:
    torch.manual_seed(3)
    fq = FakeQuantLinear(16, 8, bias=False)
    x = torch.randn(4, 16)
    expected = nn.functional.linear(fake_quant_per_token(x), fake_quant_weight(fq.weight))
    torch.testing.assert_close(fq(x), expected, rtol=1e-5, atol=1e-6)


def test_fake_quant_conv_transpose_honours_output_size() -> None:
    torch.manual_seed(4)
    fqt = FakeQuantConvTranspose2d(4, 6, 3, stride=2, padding=1)
    plain = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
    with torch.no_grad():
        plain.weight.copy_(fake_quant_weight(fqt.weight))
        plain.bias.copy_(fqt.bias)
    x = torch.randn(1, 4, 5, 5)
    out = fqt(x, output_size=[10, 10])  # 9 x 9 without output_padding 1
    assert out.shape == (1, 6, 10, 10)
    assert torch.equal(out, plain(x, output_size=[10, 10]))


def test_fake_quant_convs_quantise_weights_only() -> None:
    torch.manual_seed(2)
    conv, convt = nn.Conv2d(4, 6, 3, padding=1), nn.ConvTranspose2d(4, 6, 2, stride=2)
    x = torch.randn(1, 4, 5, 5)
    fq, fqt = FakeQuantConv2d(4, 6, 3, padding=1), FakeQuantConvTranspose2d(4, 6, 2, stride=2)
    fq.load_state_dict(conv.state_dict())
    fqt.load_state_dict(convt.state_dict())
    ref = nn.functional.conv2d(x, fake_quant_weight(conv.weight), conv.bias, padding=1)
    reft = nn.functional.conv_transpose2d(x, fake_quant_weight(convt.weight), convt.bias, stride=2)
    assert torch.equal(fq(x), ref)
    assert torch.equal(fqt(x), reft)


def test_insert_fake_quant_shares_parameters_and_keeps_state_dict_keys() -> None:
    sam = tiny_sam()
    keys = list(sam.state_dict())
    proj = sam.image_encoder.blocks[0].attn.proj
    names = insert_fake_quant(sam)
    assert list(sam.state_dict()) == keys
    swapped = sam.image_encoder.blocks[0].attn.proj
    assert isinstance(swapped, FakeQuantLinear) and swapped.weight is proj.weight
    assert isinstance(sam.mask_decoder.output_upscaling[0], FakeQuantConvTranspose2d)
    assert insert_fake_quant(sam) == names  # idempotent
    plain = tiny_sam(seed=5)
    plain.load_state_dict(sam.state_dict())  # a Stage 2 checkpoint loads into a plain SAM
    assert torch.equal(plain.image_encoder.blocks[0].attn.proj.weight, proj.weight)


def test_swapped_layer_is_independent_of_the_module_it_replaced() -> None:
    # parameters are shared, the module's containers are not: a caller still holding the
    # plain layer (or, after remove_fake_quant, the fake-quant one) cannot change the model
    sam = tiny_sam()
    old = sam.image_encoder.blocks[0].attn.proj
    insert_fake_quant(sam)
    new = sam.image_encoder.blocks[0].attn.proj
    old.register_buffer("stray", torch.zeros(1))
    old.weight = nn.Parameter(torch.zeros_like(old.weight))
    assert "image_encoder.blocks.0.attn.proj.stray" not in sam.state_dict()
    assert not torch.equal(new.weight, old.weight)
    remove_fake_quant(sam)
    new.bias = nn.Parameter(torch.zeros_like(new.bias))
    assert not torch.equal(sam.image_encoder.blocks[0].attn.proj.bias, new.bias)


def test_insert_fake_quant_records_the_selection_it_applied() -> None:
    sam = tiny_sam()
    selection = QuantSelection(encoder_neck=False, exclude_pattern="iou_prediction_head")
    names = insert_fake_quant(sam, selection)
    assert names == select_layers(tiny_sam(), selection)
    assert getattr(sam, SELECTION_ATTR) == selection.to_dict()
    remove_fake_quant(sam)
    assert getattr(sam, SELECTION_ATTR) == selection.to_dict()  # outlives the removal
    default = tiny_sam()
    insert_fake_quant(default)
    assert getattr(default, SELECTION_ATTR) == QuantSelection().to_dict()
    explicit = tiny_sam()
    assert insert_fake_quant(explicit, ["mask_decoder.output_upscaling.0"]) == ["mask_decoder.output_upscaling.0"]
    assert getattr(explicit, SELECTION_ATTR) is None


def test_remove_fake_quant_restores_the_plain_model_output() -> None:
    sam = tiny_sam()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = sam.image_encoder(x)
        names = insert_fake_quant(sam)
        during = sam.image_encoder(x)
        assert remove_fake_quant(sam) == names
        after = sam.image_encoder(x)
    assert not any(isinstance(m, FakeQuantLinear) for m in sam.modules())
    assert torch.equal(before, after)
    assert not torch.equal(before, during)
    torch.testing.assert_close(during, before, atol=0.1, rtol=0.1)


# -- selection -------------------------------------------------------------------------------
def expected_paper_layers(sam: nn.Module) -> list[str]:
    """The spec, written independently of engine.quant.qat's rules."""
    names = []
    for name, m in sam.named_modules():
        if name.startswith("image_encoder."):
            if isinstance(m, nn.Linear) and not name.endswith("attn.qkv"):
                names.append(name)
            elif name.startswith("image_encoder.neck.") and isinstance(m, nn.Conv2d):
                names.append(name)
        elif name.startswith("mask_decoder.") and isinstance(
            m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
        ):
            names.append(name)
        elif name.startswith("prompt_encoder.") and isinstance(m, nn.Conv2d):
            names.append(name)
    return names


def test_default_selection_is_the_papers_mixed_precision_split() -> None:
    sam = tiny_sam()
    names = select_layers(sam)
    assert names == expected_paper_layers(sam)
    assert not any("qkv" in n for n in names)
    assert "image_encoder.patch_embed.proj" not in names
    for block in range(2):
        for leaf in ("attn.proj", "mlp.lin1", "mlp.lin2"):
            assert f"image_encoder.blocks.{block}.{leaf}" in names
    assert {"image_encoder.neck.0", "image_encoder.neck.2"} <= set(names)
    assert {f"prompt_encoder.mask_downscaling.{i}" for i in (0, 3, 6)} <= set(names)
    decoder = [
        n for n, m in sam.mask_decoder.named_modules(prefix="mask_decoder")
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))
    ]
    assert set(decoder) <= set(names)
    assert {"mask_decoder.output_upscaling.0", "mask_decoder.output_upscaling.3"} <= set(decoder)
    assert not any(isinstance(sam.get_submodule(n), nn.Embedding) for n in names)


def test_layers_outside_the_named_groups_stay_fp32() -> None:
    # an encoder conv that is neither neck nor patch embedding, and a layer outside the three
    # SAM components, are in none of the paper's INT8 groups
    sam = tiny_sam()
    sam.image_encoder.extra_conv = nn.Conv2d(4, 4, 1)
    sam.extra_head = nn.Linear(4, 4)
    names = select_layers(sam, QuantSelection(encoder_patch_embed=True))
    assert "image_encoder.extra_conv" not in names and "extra_head" not in names
    assert "image_encoder.patch_embed.proj" in names


def test_selection_never_takes_adalora_layers() -> None:
    sam = tiny_sam()
    wrap_adalora(sam, AdaLoraConfig(r_max=4, target_rank=2, include_proj_mlp=True))
    names = select_layers(sam)
    assert not any(n.startswith("image_encoder.blocks.") for n in names)
    assert not any("lora" in n or n.endswith(".base") for n in names)
    assert "mask_decoder.iou_prediction_head.layers.0" in names


def test_selection_switches_and_exclusion_pattern() -> None:
    sam = tiny_sam()
    everything = set(select_layers(sam))
    no_neck = set(select_layers(sam, QuantSelection(encoder_neck=False)))
    assert everything - no_neck == {"image_encoder.neck.0", "image_encoder.neck.2"}
    with_patch = set(select_layers(sam, QuantSelection(encoder_patch_embed=True)))
    assert with_patch - everything == {"image_encoder.patch_embed.proj"}
    encoder_only = select_layers(sam, QuantSelection(mask_decoder=False, prompt_encoder=False))
    assert all(n.startswith("image_encoder.") for n in encoder_only)
    no_iou = select_layers(sam, QuantSelection(exclude_pattern=r"iou_prediction_head"))
    assert not any("iou_prediction_head" in n for n in no_iou)
    # an excluded layer drops only itself: the layers after it in module order stay selected
    excluded = set(select_layers(sam, QuantSelection(exclude_pattern=r"^image_encoder\.neck\.0$")))
    assert everything - excluded == {"image_encoder.neck.0"}


def test_selection_is_immutable_and_hashable() -> None:
    # it is recorded on the model when Stage 2 starts: nothing may change it afterwards
    selection = QuantSelection()
    with pytest.raises(dataclasses.FrozenInstanceError):
        selection.encoder_neck = False  # type: ignore[misc]
    assert hash(selection) == hash(QuantSelection())


def test_selection_from_dict_turns_invalid_values_into_model_load_error() -> None:
    with pytest.raises(ModelLoadError, match="invalid"):
        QuantSelection.from_dict({"exclude_pattern": "(unclosed"})  # re.error
    with pytest.raises(ModelLoadError, match="invalid"):
        QuantSelection.from_dict({"exclude_pattern": 5})  # TypeError from re.compile


def test_selection_round_trips_through_a_dict_and_refuses_unknown_keys() -> None:
    selection = QuantSelection(encoder_neck=False, exclude_pattern="neck")
    assert QuantSelection.from_dict(selection.to_dict()) == selection
    with pytest.raises(ModelLoadError, match="unknown keys"):
        QuantSelection.from_dict({"encoder_qkv": True})


def test_a_qat_step_trains_through_fake_quant_layers() -> None:
    from engine.sam import predict_boxes

    sam = tiny_sam()
    wrap_adalora(sam, AdaLoraConfig(r_max=4, target_rank=2))
    insert_fake_quant(sam)
    sam.train()
    images = torch.randn(2, 3, 64, 64)
    boxes = torch.tensor([[4.0, 4.0, 40.0, 50.0], [8.0, 2.0, 60.0, 60.0]])
    target = torch.zeros(2, 1, 16, 16)
    target[..., 2:12, 2:12] = 1
    logits, _ = predict_boxes(sam, sam.image_encoder(images), boxes, torch.tensor([0, 1]))
    nn.functional.binary_cross_entropy_with_logits(logits, target).backward()
    lin1 = sam.mask_decoder.transformer.layers[0].mlp.lin1
    lam = sam.image_encoder.blocks[0].attn.qkv.lora_lambda
    proj = sam.image_encoder.blocks[0].attn.proj
    for grad in (lin1.weight.grad, lam.grad, proj.weight.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
