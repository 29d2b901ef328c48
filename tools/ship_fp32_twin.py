"""Ship the FP32 twin of the shipped INT8 model: the same Stage 2 weights before INT8 export.

    python tools/ship_fp32_twin.py --stage2 RUNS/v2-stage2/best

Why: the compare view (and anyone measuring the compression) must set one model in two
precisions side by side, not the Stage 1 base against the Stage 2 result. The twin is the
Stage 2 model exactly as ``tools/ship_default_model.py`` hands it to ``export_int8``
(fake-quant removed, AdaLoRA merged into qkv), stored as FP16 (loads as FP32), with the INT8
folder's mask styles and its box head (the same file, re-saved through ``save_box_head``).
model.json keeps Stage 2's provenance, metrics and ``qat`` selection (so an INT8 export of the
twin quantises the layers Stage 2 trained) and says whose twin it is in ``twin``.

Checks before it returns: re-exporting these FP32 weights to INT8 gives the shipped INT8
weights and scales exactly (so they are its source), the folder loads as a plain FP32 model
whose tensors equal the merged Stage 2 tensors rounded to FP16, the box head file is
byte-identical to the INT8 folder's; it prints the share of INT8 weights the twin's FP16-stored
weights themselves quantise to (FP16 rounding moves a few across a rounding boundary).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.adalora import merge_adalora  # noqa: E402
from engine.atomic import atomic_write_bytes  # noqa: E402
from engine.models import (  # noqa: E402
    BOX_HEAD_FILE,
    describe_structure,
    load_box_head,
    load_model_folder,
    read_model_json,
    save_box_head,
    save_sam_folder,
    sha256_file,
)
from engine.models.folder import MODEL_JSON, WEIGHTS_FILE  # noqa: E402
from engine.models.int8_export import int8_model  # noqa: E402
from engine.quant import quantize_weight, remove_fake_quant  # noqa: E402

MODELS = ROOT / "resources" / "models"
INT8_NAME, TWIN_NAME = "lungsam-compact-int8", "lungsam-compact-fp32"
TWIN_CARD = """# {twin} — the FP32 twin of {int8}

The shipped INT8 model before its INT8 export: the same Stage 2 weights (AdaLoRA merged into
qkv), stored as FP16 and run as FP32, with the same mask styles ({styles}) and
the same box head. It ships so the compare view (View > Compare models, `lungsam gui
--compare`) shows one model in two precisions; deploy `{int8}`, fine-tune from
`lungsam-compact-base`. Built by `tools/ship_fp32_twin.py`; data, training, metrics and the
measured twin-vs-INT8 agreement are in `../{int8}/README.md` ("The FP32 twin").
"""
"""The twin folder's README (written by the tool: replacing the folder must not lose it)."""


def merged_stage2(stage2_dir: Path) -> tuple[torch.nn.Module, dict]:
    """The Stage 2 model as the INT8 export sees it (float weights, adapters merged) and its model.json."""
    stage2 = load_model_folder(stage2_dir)
    remove_fake_quant(stage2.sam)
    merge_adalora(stage2.sam)
    return stage2, stage2.meta


def build_twin(stage2_dir: Path, int8_dir: Path, out_dir: Path) -> Path:
    """Write the twin folder at ``out_dir`` (replacing it); returns its path."""
    stage2, meta = merged_stage2(stage2_dir)
    int8_meta = read_model_json(int8_dir)
    if stage2.meta.get("mask_styles") != int8_meta.get("mask_styles"):
        raise SystemExit(f"{stage2_dir} and {int8_dir} have different mask styles: not twins")
    twin = {
        "of": int8_meta.get("name", int8_dir.name),
        "relation": "the same Stage 2 weights before INT8 export (fake-quant removed, AdaLoRA "
                    "merged into qkv), stored as FP16 and run as FP32",
        "stage2_weights_sha256": meta["weights"]["sha256"],
        "int8_weights_sha256": int8_meta["weights"]["sha256"],
        "built_by": "tools/ship_fp32_twin.py",
    }
    extra = {"name": out_dir.name, "provenance": meta.get("provenance"), "metrics": meta.get("metrics"),
             "twin": twin}
    out = save_sam_folder(out_dir, stage2.sam, stage2.config, storage_dtype="float16", extra_meta=extra)
    qat = meta.get("qat")
    if qat:  # save_sam_folder describes the live (fake-quant-free) model: put the trained selection back
        description = read_model_json(out)
        description["qat"] = {"layers": qat.get("layers"), "selection": qat.get("selection")}
        atomic_write_bytes(out / MODEL_JSON, (json.dumps(description, indent=2, sort_keys=True) + "\n").encode())
    head, problem = load_box_head(int8_dir, int8_meta)
    if head is None:
        raise SystemExit(f"{int8_dir}: no usable box head ({problem})")
    save_box_head(out, head, (int8_meta.get("box_head") or {}).get("provenance"))
    styles = ", ".join(f"`{s}`" for s in int8_meta.get("mask_styles") or ["visible"])
    card = TWIN_CARD.format(twin=out_dir.name, int8=int8_meta.get("name", int8_dir.name), styles=styles)
    atomic_write_bytes(out / "README.md", card.encode())
    verify(out, stage2.sam, int8_dir)
    return out


def verify(twin_dir: Path, merged: torch.nn.Module, int8_dir: Path) -> None:
    """Fail loudly unless the written folder is what it claims to be."""
    twin = load_model_folder(twin_dir)
    if twin.is_int8 or describe_structure(twin.sam)["adapter"] is not None:
        raise SystemExit("the twin must load as a plain FP32 model")
    expected = {k: v.to(torch.float16).float() if v.is_floating_point() else v
                for k, v in merged.state_dict().items()}
    got = twin.sam.state_dict()
    if set(got) != set(expected) or any(not torch.equal(got[k].float(), expected[k].float()) for k in got):
        raise SystemExit("the twin's tensors are not the merged Stage 2 tensors in FP16")
    if sha256_file(twin_dir / BOX_HEAD_FILE) != sha256_file(int8_dir / BOX_HEAD_FILE):
        raise SystemExit("the twin's box head differs from the INT8 model's")
    shipped = load_model_folder(int8_dir).sam.state_dict()
    again = int8_model(merged).state_dict()  # the INT8 export of these FP32 weights, redone
    if set(again) != set(shipped) or any(
            not torch.equal(again[k], shipped[k]) for k in shipped if k.endswith(("weight_int8", "weight_scale"))):
        raise SystemExit(f"{int8_dir} was not exported from these Stage 2 weights")
    same = total = 0
    for key, value in shipped.items():
        if key.endswith("weight_int8"):
            q, _ = quantize_weight(twin.sam.get_submodule(key.removesuffix(".weight_int8")).weight)
            same += int((q == value).sum())
            total += q.numel()
    size = (twin_dir / WEIGHTS_FILE).stat().st_size
    print(f"{twin_dir.name}: {size / 1e6:.2f} MB weights (FP16), {sum(p.numel() for p in twin.sam.parameters()):,} "
          f"parameters; its weights quantise to the shipped INT8 weights in {same:,} of {total:,} values "
          f"({100 * same / total:.3f} %; FP16 storage moves the rest by one step)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage2", required=True, type=Path, help="the Stage 2 model folder the INT8 model came from")
    parser.add_argument("--int8", type=Path, default=MODELS / INT8_NAME, help="the shipped INT8 folder")
    parser.add_argument("--out", type=Path, default=MODELS / TWIN_NAME)
    args = parser.parse_args()
    print(build_twin(args.stage2, args.int8, args.out))


if __name__ == "__main__":
    main()
