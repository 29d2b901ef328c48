"""Quantization: fake-quant layers for quantization-aware training and the INT8 arithmetic
they simulate (:mod:`~engine.quant.qat`), and the real INT8 layers a model runs with
after export (:mod:`~engine.quant.int8_runtime`).
"""

from engine.quant.int8_runtime import (
    INT8_TYPES,
    Int8Conv2d,
    Int8ConvTranspose2d,
    Int8Linear,
    convert_to_int8,
    int8_layers,
    prepare_int8,
    set_kernel,
)
from engine.quant.qat import (
    QUANTIZABLE,
    SELECTION_ATTR,
    FakeQuantConv2d,
    FakeQuantConvTranspose2d,
    FakeQuantLinear,
    QuantSelection,
    dequantize,
    fake_quant,
    fake_quant_layers,
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

__all__ = [
    "FakeQuantConv2d",
    "FakeQuantConvTranspose2d",
    "FakeQuantLinear",
    "INT8_TYPES",
    "Int8Conv2d",
    "Int8ConvTranspose2d",
    "Int8Linear",
    "QUANTIZABLE",
    "QuantSelection",
    "SELECTION_ATTR",
    "convert_to_int8",
    "dequantize",
    "fake_quant",
    "fake_quant_layers",
    "fake_quant_per_token",
    "fake_quant_weight",
    "insert_fake_quant",
    "int8_layers",
    "prepare_int8",
    "quantize",
    "quantize_per_token",
    "quantize_weight",
    "remove_fake_quant",
    "select_layers",
    "set_kernel",
    "weight_scale",
]
