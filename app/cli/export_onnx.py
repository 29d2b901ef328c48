"""`lungsam export-onnx MODEL -o DIR`: the model as ONNX files for ONNX Runtime and
ONNX-based annotation tools (engine only; onnx/onnxruntime imported when it runs)."""

from __future__ import annotations

import argparse


def add_export_onnx_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-onnx",
        help="write a model as ONNX (encoder + one prompt/mask decoder per mask style)",
    )
    p.add_argument("model", help="model name, model folder or official .pth")
    p.add_argument("--type", dest="model_type", help="checkpoint type for .pth files: vit_b, vit_l, vit_h, medsam")
    p.add_argument("-o", "--out", required=True, help="output folder (created)")
    p.set_defaults(func=run_export_onnx)


def run_export_onnx(args: argparse.Namespace) -> int:
    from engine.models import load_model
    from engine.onnx_export import require

    require("onnx")  # fail before loading a large model
    from engine.onnx_export import export_onnx

    manifest = export_onnx(load_model(args.model, args.model_type), args.out)
    files = sorted(p.name for p in manifest.parent.glob("*.onnx"))
    print(f"exported {args.model} -> {manifest.parent}: {', '.join(files)} ({manifest.name} says how to feed them)")
    return 0
