"""ONNX export round trip: ONNX Runtime's masks against engine.predict.Predictor's.

Tiny random models (FP32 and INT8, two mask styles) cover every prompt kind the decoder file
takes; the shipped INT8 model on the shipped sample radiographs checks the real thing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from engine.models import LoadedModel, export_int8, load_model, load_model_folder
from engine.onnx_export import MANIFEST, OnnxModel, export_onnx
from engine.predict import Predictor
from tests.conftest import synthetic_cxr

SAMPLES = Path(__file__).resolve().parents[3] / "resources" / "samples"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2 * int((a & b).sum()) / total


PROMPTS = {
    "box": {"boxes": [8, 12, 60, 88]},
    "box+points": {"boxes": [8, 12, 60, 88], "points": [[20, 40], [50, 70]], "point_labels": [1, 0]},
    "points": {"points": [[20, 40], [55, 50]], "point_labels": [1, 1]},
}


def assert_round_trip(model: LoadedModel, folder: Path, image: np.ndarray, floor: float) -> None:
    onnx_model = OnnxModel(folder, threads=1)
    predictor = Predictor(model, device="cpu")
    predictor.set_image(image)
    embedding = onnx_model.embed(image)
    assert onnx_model.mask_styles == predictor.mask_styles
    for style in predictor.mask_styles:
        for name, prompt in PROMPTS.items():
            ours = predictor.predict(**prompt, style=style, restrict=False)
            kwargs = {"box": prompt.get("boxes"), "points": prompt.get("points"),
                      "point_labels": prompt.get("point_labels")}
            mask, _, low = onnx_model.predict(embedding, **kwargs, style=style)
            assert mask.shape == image.shape[:2]
            assert dice(mask, ours.masks[0, 0]) >= floor, (style, name)
            # refinement with the previous round's logits (mask_input / has_mask_input)
            again = predictor.predict(**prompt, style=style, restrict=False, mask_input=ours.low_res_logits)
            mask2, _, _ = onnx_model.predict(embedding, **kwargs, style=style, mask_input=ours.low_res_logits)
            assert dice(mask2, again.masks[0, 0]) >= floor, (style, name, "mask_input")


def test_fp32_tiny_model_round_trip_with_styles(styled_tiny_sam, tmp_path):
    sam, config = styled_tiny_sam
    model = LoadedModel(sam=sam, config=config, model_hash="tiny-styled", source="memory")
    manifest = json.loads(export_onnx(model, tmp_path / "onnx").read_text())
    assert manifest["decoders"] == {"visible": "decoder.onnx", "anatomical": "decoder-anatomical.onnx"}
    assert manifest["int8"] is False
    # FP32: the same arithmetic up to float rounding, so the masks are equal
    assert_round_trip(model, tmp_path / "onnx", synthetic_cxr(96, 80), floor=0.999)


def test_int8_tiny_model_round_trip_keeps_int8_weights(styled_tiny_sam, tmp_path):
    sam, config = styled_tiny_sam
    int8 = load_model_folder(export_int8(sam, config, tmp_path / "int8"))
    export_onnx(int8, tmp_path / "onnx")
    assert int8.is_int8
    assert_round_trip(int8, tmp_path / "onnx", synthetic_cxr(90, 100, seed=2), floor=0.999)
    import onnx

    encoder = onnx.load(tmp_path / "onnx" / "encoder.onnx")
    int8_inits = [t for t in encoder.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8_inits, "INT8 layers are written with int8 weights"


def test_hires_int8_model_round_trip(styled_tiny_sam, tmp_path):
    """The hi-res detail path (engine.sam.hires) inside the files: the encoder's output carries
    the folded detail features and the decoder adds them, as our predictor does; the
    manifest's "percentile" normalisation is applied by OnnxModel as by our predictor."""
    from engine.sam import build_sam, grow_hires
    from tests.sam_factory import tiny_config

    sam, _ = styled_tiny_sam
    config = tiny_config(hires_skip=True, normalization="percentile")  # as compact-hr
    grown = grow_hires(sam, build_sam(config))
    with torch.no_grad():  # a trained stem, not the zero start
        grown.image_encoder.hires.out.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(3))
    int8 = load_model_folder(export_int8(grown, config, tmp_path / "int8"))
    export_onnx(int8, tmp_path / "onnx")
    assert_round_trip(int8, tmp_path / "onnx", synthetic_cxr(90, 100, seed=4), floor=0.999)


@pytest.mark.parametrize(("name", "floor"), [("lungsam-compact-int8", 0.999), ("lungsam-compact-fp32", 0.99999)])
def test_shipped_models_on_sample_radiographs_in_every_style(name, floor, tmp_path):
    """The shipped INT8 model and its FP32 twin on the shipped radiographs, both-lung box,
    every mask style: ONNX Runtime's mask against our Predictor's. The twin agrees exactly;
    the INT8 model's rest is float rounding that flips INT8 rounding decisions, as large as
    our own runtime's under one-ulp input noise (benchmarks/onnx_agreement.py)."""
    model = load_model(name)
    export_onnx(model, tmp_path / "onnx")
    onnx_model = OnnxModel(tmp_path / "onnx", threads=2)
    predictor = Predictor(model, device="cpu")
    images = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    assert len(images) == 3 and predictor.mask_styles == ["visible", "anatomical"]
    from engine.imaging import load_image

    for path in images:
        image = load_image(path).pixels
        h, w = image.shape[:2]
        box = [0.1 * w, 0.12 * h, 0.9 * w, 0.9 * h]
        predictor.set_image(image)
        embedding = onnx_model.embed(image)
        for style in predictor.mask_styles:
            ours = predictor.predict(boxes=box, style=style, restrict=False).masks[0, 0]
            mask, _, _ = onnx_model.predict(embedding, box=box, style=style)
            assert dice(mask, ours) >= floor, (path.name, style, dice(mask, ours))


def test_manifest_names_every_file(loaded_tiny, tmp_path):
    manifest_path = export_onnx(loaded_tiny, tmp_path / "onnx")
    assert manifest_path.name == MANIFEST
    manifest = json.loads(manifest_path.read_text())
    assert manifest["decoders"] == {"default": "decoder.onnx"}
    for name in [manifest["encoder"], *manifest["decoders"].values()]:
        assert (tmp_path / "onnx" / name).is_file()
    assert manifest["img_size"] == loaded_tiny.config.img_size


def test_sessions_do_not_spin_between_runs(loaded_tiny, tmp_path):
    """ONNX Runtime's pool busy-waits after each run by default, taking the CPU from whatever
    runs next in the process (it made torch look 3x slower beside it in benchmarks/int8.py)."""
    export_onnx(loaded_tiny, tmp_path / "onnx")
    model = OnnxModel(tmp_path / "onnx", threads=2)
    for sess in (model.encoder, *model.decoders.values()):
        assert sess.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
