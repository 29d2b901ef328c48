"""``export_onnx``: a model (folder, shipped name or official checkpoint) -> ONNX files.

The folder written holds ``encoder.onnx``, one decoder per mask style (``decoder.onnx`` for
style 0, ``decoder-<style>.onnx`` for the others) and ``lungsam-onnx.json``, which says how to
feed them: input size, normalisation, the styles, and the prompt frame (see
:mod:`engine.onnx_export.graphs`). INT8 layers are written with their int8 weights and our
INT8 numerics as plain ONNX operators (per-token activation scale, round, float matmul of the
integer grid, rescale), the float path of :mod:`engine.quant.int8_runtime` that agrees with the
integer kernel bit for bit (the traced decoder reproduces the Predictor's low-res logits exactly,
and ONNX Runtime's elementwise operators give the same bits as torch's).

What remains is float rounding in the operators that are float by design (matmuls of float
activations, softmax, layer norm, erf, sin/cos, conv), where ONNX Runtime's kernels round
differently from torch's by an ulp or a few. In an FP32 model that stays at ~1e-6 and the masks
are equal. In an INT8 model a value within that distance of a half step of ``round(x / s)``
lands on the other integer, and the changed step feeds every later quantisation: masks then
agree at mean Dice ~0.9996 on real images and now and then below 0.999, exactly as our own
runtime does against itself when its input moves by one ulp. No exporter choice removes that
without bit-identical float kernels; ``benchmarks/onnx_agreement.py`` measures all three.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from engine.adalora import merge_adalora
from engine.atomic import atomic_write_bytes
from engine.errors import LungSamError
from engine.models import LoadedModel
from engine.onnx_export.graphs import DecoderGraph, EncoderGraph, decoder_example_inputs
from engine.quant import set_kernel
from engine.sam import mask_styles

MANIFEST = "lungsam-onnx.json"
ENCODER_FILE = "encoder.onnx"
OPSET = 17
DECODER_INPUTS = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"]
DECODER_OUTPUTS = ["masks", "iou_predictions", "low_res_masks"]


class MissingDependencyError(LungSamError):
    """An optional package (onnx, onnxruntime) is not installed."""


def require(module: str) -> Any:
    """Import an optional dependency or raise a one-line error saying how to install it."""
    try:
        return __import__(module)
    except ImportError:
        raise MissingDependencyError(
            f"{module} is not installed; ONNX export and ONNX Runtime need the optional "
            "dependencies: pip install 'lungsam[onnx]'"
        ) from None


def decoder_file(style_index: int, style: str) -> str:
    return "decoder.onnx" if style_index == 0 else f"decoder-{style}.onnx"


def _export(module: torch.nn.Module, args: tuple, path: Path, **kwargs: Any) -> None:
    """Trace with the TorchScript exporter (the dynamo one needs onnxscript), check, write atomically."""
    onnx = require("onnx")
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=OPSET, do_constant_folding=False, **kwargs)  # type: ignore[arg-type]  # torch accepts a file object
    data = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    atomic_write_bytes(path, data)


def export_onnx(model: LoadedModel, out_dir: str | Path) -> Path:
    """Write ``model`` as ONNX files into ``out_dir`` (created); returns the manifest path.

    The model itself is not changed: a copy is merged (AdaLoRA) and switched to the float
    INT8 path for tracing.
    """
    require("onnx")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sam = copy.deepcopy(model.sam).float().cpu().eval()
    merge_adalora(sam)
    set_kernel(sam, "float")
    config = model.config
    image = torch.zeros(1, 3, config.img_size, config.img_size)
    _export(EncoderGraph(sam), (image,), out / ENCODER_FILE, input_names=["image"], output_names=["image_embeddings"])
    styles = mask_styles(sam)
    decoders = {}
    for index, style in enumerate(styles):
        name = decoder_file(index, style)
        _export(
            DecoderGraph(sam, token=index), decoder_example_inputs(sam), out / name,
            input_names=DECODER_INPUTS, output_names=DECODER_OUTPUTS,
            dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
        )
        decoders[style] = name
    manifest = {
        "format": "lungsam-onnx",
        "format_version": 1,
        "model": model.name,
        "model_hash": model.model_hash,
        "int8": model.is_int8,
        "opset": OPSET,
        "encoder": ENCODER_FILE,
        "decoders": decoders,
        "mask_styles": styles,
        "img_size": config.img_size,
        "embedding_size": config.embedding_size,
        "normalization": config.normalization,
        "pixel_mean": list(config.pixel_mean),
        "pixel_std": list(config.pixel_std),
        "mask_threshold": float(sam.mask_threshold),
        "preprocessing": "resize the long side to img_size (bilinear), RGB, normalise as "
        "'normalization' says (sam: (x - pixel_mean) / pixel_std; minmax: to [0, 1]; percentile: "
        "x' = (x - p1) * 255 / max(p99 - p1, 1) with p1, p99 the 1st and 99th percentiles "
        "of the resized image's channel mean (linear interpolation), then as sam), "
        "zero-pad bottom/right to img_size",
        "prompts": "point_coords in the resized frame (x * resized_w / W, y * resized_h / H); a box "
        "is two points labelled 2 and 3 after the clicks; a prompt without a box ends with one "
        "point (0, 0) labelled -1",
    }
    path = out / MANIFEST
    atomic_write_bytes(path, (json.dumps(manifest, indent=2) + "\n").encode())
    return path
