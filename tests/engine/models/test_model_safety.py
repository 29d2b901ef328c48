"""Model files come from outside: every broken or hostile model folder is a clear ModelLoadError,
nothing is allocated from a hostile description, and the model in use stays in use.

(Pickles that would run code, truncated .pth and swapped/truncated weight files are covered in
test_official_checkpoint.py and test_model_folder.py.)
"""

from __future__ import annotations

import json
import re
import resource
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from engine.errors import ModelLoadError
from engine.models import (
    INT8_SCHEME,
    export_int8,
    list_models,
    load_model,
    load_model_folder,
    save_sam_folder,
    sha256_file,
)
from engine.predict import Predictor
from tests.conftest import synthetic_cxr


def edit_json(folder: Path, change) -> None:
    path = folder / "model.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def rewrite_weights(folder: Path, data: bytes | None = None, tensors=None) -> None:
    """Replace the weight file and record its sha256, as a hostile but self-consistent folder would."""
    weights = folder / "weights.safetensors"
    if tensors is not None:
        save_file(tensors, str(weights))
    else:
        weights.write_bytes(data)

    def record(meta: dict) -> None:
        meta["weights"]["sha256"] = sha256_file(weights)
        meta["weights"]["bytes"] = weights.stat().st_size

    edit_json(folder, record)


def refused(folder: Path) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_model_folder(folder)
    return str(info.value)


@pytest.fixture
def folder(tiny_sam, tmp_path) -> Path:
    sam, config = tiny_sam
    return save_sam_folder(tmp_path / "model", sam, config)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- keys and shapes


@pytest.mark.parametrize(
    ("config_change", "expected"),
    [
        ({"encoder_embed_dim": 64}, "with wrong shape (e.g. image_encoder."),
        ({"encoder_depth": 3}, "missing (e.g. image_encoder.blocks.2."),
        ({"encoder_depth": 1, "encoder_global_attn_indexes": [0]}, "unexpected (e.g. image_encoder.blocks.1."),
        ({"prompt_embed_dim": 48}, "with wrong shape"),
        ({"img_size": 128}, "image_encoder.pos_embed"),
    ],
    ids=["embed-dim", "deeper", "shallower", "prompt-dim", "img-size"],
)
def test_config_that_does_not_fit_the_weights_names_the_mismatch(folder, config_change, expected):
    edit_json(folder, lambda meta: meta["config"].update(config_change))
    message = refused(folder)
    assert message.startswith("model: weights do not fit the model: ") and expected in message


def test_absurd_config_is_refused_without_allocating_it(folder):
    """A model.json describing a 10^12-parameter encoder is checked against the weight file
    before anything is built: fast, and no memory is taken."""
    edit_json(folder, lambda meta: meta["config"].update(encoder_embed_dim=1_000_000, encoder_depth=24,
                                                          encoder_global_attn_indexes=[5, 11]))
    before, start = peak_rss_mib(), time.monotonic()
    message = refused(folder)
    assert "weights do not fit the model" in message
    assert time.monotonic() - start < 10 and peak_rss_mib() - before < 500


def test_renamed_tensors_are_named_as_missing_and_unexpected(folder):
    tensors = load_file(str(folder / "weights.safetensors"))
    tensors["mask_decoder.iou_token.weight_renamed"] = tensors.pop("mask_decoder.iou_token.weight")
    rewrite_weights(folder, tensors=tensors)
    message = refused(folder)
    assert "1 missing (e.g. mask_decoder.iou_token.weight)" in message
    assert "1 unexpected (e.g. mask_decoder.iou_token.weight_renamed)" in message


def test_int8_layers_claimed_but_not_in_the_weights_are_refused(folder):
    layer = "mask_decoder.iou_prediction_head.layers.0"
    edit_json(folder, lambda meta: meta.update(int8={"layers": [layer], "scheme": INT8_SCHEME, "selection": None}))
    message = refused(folder)
    assert "weights do not fit the model" in message and f"{layer}.weight_int8" in message


def test_int8_weights_without_int8_description_are_refused(tiny_sam, tmp_path):
    sam, config = tiny_sam
    int8 = export_int8(sam, config, tmp_path / "int8")
    assert load_model_folder(int8).is_int8
    edit_json(int8, lambda meta: meta.update(int8=None))
    message = refused(int8)
    assert re.search(r"\d+ unexpected \(e\.g\. [^)]*\.weight_(int8|scale)", message), message


# ----------------------------------------------------------------------------- the weight file


def test_safetensors_with_huge_declared_header_is_refused(folder):
    """The first 8 bytes declare a 1 TiB JSON header: refused from the size, not read."""
    data = (folder / "weights.safetensors").read_bytes()
    rewrite_weights(folder, struct.pack("<Q", 1 << 40) + data[8:])
    before, start = peak_rss_mib(), time.monotonic()
    assert "weight file is truncated or corrupt" in refused(folder)
    assert time.monotonic() - start < 10 and peak_rss_mib() - before < 200


def test_safetensors_header_claiming_a_huge_tensor_is_refused(folder):
    """A well-formed header whose tensor is 10^12 floats but whose data is 16 bytes."""
    header = json.dumps(
        {"image_encoder.pos_embed": {"dtype": "F32", "shape": [1_000_000, 1_000_000], "data_offsets": [0, 16]}}
    ).encode()
    rewrite_weights(folder, struct.pack("<Q", len(header)) + header + b"\0" * 16)
    before = peak_rss_mib()
    assert "weight file is truncated or corrupt" in refused(folder)
    assert peak_rss_mib() - before < 200


def test_truncated_safetensors_with_matching_hash_is_refused(folder):
    data = (folder / "weights.safetensors").read_bytes()
    rewrite_weights(folder, data[: len(data) // 2])
    assert "weight file is truncated or corrupt" in refused(folder)


def test_weight_file_outside_the_folder_is_refused(folder, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes((folder / "weights.safetensors").read_bytes())
    edit_json(folder, lambda meta: meta["weights"].update(file="../elsewhere.safetensors"))
    assert "must be a file inside the model folder" in refused(folder)


# ----------------------------------------------------------------------------- model.json


@pytest.mark.parametrize(
    "change",
    [
        lambda meta: meta.pop("config"),
        lambda meta: meta.update(config="vit_h"),
        lambda meta: meta["config"].update(img_size="big"),
        lambda meta: meta["config"].update(encoder_global_attn_indexes=None),
        lambda meta: meta["config"].update(patch_size=0),
        lambda meta: meta.update(weights=["weights.safetensors"]),
        lambda meta: meta.update(format_version="two"),
        lambda meta: meta.update(adapter={"config": "yes", "rank_pattern": {}}),
        lambda meta: meta.update(int8={"layers": [["not", "a", "name"]], "scheme": INT8_SCHEME}),
    ],
    ids=["no-config", "config-not-object", "size-not-number", "indexes-null", "patch-size-zero", "weights-not-object",
         "version-not-number", "adapter-config-not-object", "int8-layer-not-name"],
)
def test_malformed_model_json_is_a_clear_error(folder, change):
    edit_json(folder, change)
    message = refused(folder)
    assert message.startswith(("model", str(folder))), message


def test_model_json_that_is_not_an_object_is_refused(folder):
    (folder / "model.json").write_text("[1, 2, 3]")
    assert "not a LungSAM model description" in refused(folder)


# ----------------------------------------------------------------------------- the model in use


def test_failed_load_leaves_the_predictor_on_its_model(folder):
    """The swap happens only after a successful load: a broken folder changes nothing."""
    good = load_model_folder(folder)
    predictor = Predictor(good, device="cpu")
    image = synthetic_cxr(96, 80)
    predictor.set_image(image)
    before = predictor.predict(boxes=[8, 10, 70, 90])
    broken = folder.parent / "broken"
    broken.mkdir()
    (broken / "model.json").write_text((folder / "model.json").read_text())
    (broken / "weights.safetensors").write_bytes((folder / "weights.safetensors").read_bytes()[:500])
    with pytest.raises(ModelLoadError, match="does not match model.json"):
        predictor.set_model(load_model(broken))
    assert predictor.model is good and predictor.is_image_set
    after = predictor.predict(boxes=[8, 10, 70, 90])
    assert np.array_equal(before.masks, after.masks)
    np.testing.assert_allclose(before.scores, after.scores)


def test_registry_never_lists_incomplete_or_malformed_folders(tiny_sam, tmp_path, monkeypatch):
    sam, config = tiny_sam
    monkeypatch.setenv("LUNGSAM_RESOURCES", str(tmp_path / "res"))
    monkeypatch.setenv("LUNGSAM_MODELS", str(tmp_path / "user"))
    user = tmp_path / "user"
    save_sam_folder(user / "good", sam, config)
    cut = save_sam_folder(user / "cut", sam, config)
    weights = cut / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # shorter than model.json says
    odd = save_sam_folder(user / "odd", sam, config)
    edit_json(odd, lambda meta: meta.update(weights=["weights.safetensors"]))
    (user / "list").mkdir()
    (user / "list" / "model.json").write_text("[]")
    (user / ".new.partial-1234").mkdir()
    assert [e.name for e in list_models()] == ["good"]
