"""`lungsam segment` and `lungsam import-checkpoint` (engine only: never imports Qt)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.errors import LungSamError, PromptError


def parse_box(text: str) -> list[float]:
    """'X0,Y0,X1,Y1' -> four floats (argparse type)."""
    parts = text.replace(" ", "").split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"box '{text}' must be four numbers X0,Y0,X1,Y1") from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"box '{text}' must be four numbers X0,Y0,X1,Y1")
    return values


def add_segment_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment lungs in images from box prompts, write PNG masks")
    p.add_argument("images", nargs="*", help="image files (PNG, JPEG, TIFF, DICOM)")
    p.add_argument("--box", action="append", type=parse_box, default=[],
                   help="X0,Y0,X1,Y1 in image pixels; repeat for several boxes (e.g. each lung)")
    p.add_argument("--prompts", help='JSON file {"image path": [[x0,y0,x1,y1], ...], ...}')
    p.add_argument("--model", help="model name, model folder or official .pth (default: shipped)")
    p.add_argument("--type", dest="model_type", help="checkpoint type for .pth files: vit_b, vit_l, vit_h, medsam")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--style", help="mask style (annotation convention), e.g. anatomical; "
                   "`lungsam models` lists each model's styles (default: the model's first)")
    p.add_argument("-o", "--out", required=True, help="output folder for the masks")
    p.set_defaults(func=run_segment)

    m = sub.add_parser("models", help="list the installed models, their mask styles and the default")
    m.set_defaults(func=run_models)

    q = sub.add_parser("import-checkpoint", help="convert an official SAM/MedSAM .pth into a model folder")
    q.add_argument("checkpoint")
    q.add_argument("--type", dest="model_type", help="vit_b, vit_l, vit_h or medsam (default: from shapes)")
    q.add_argument("-o", "--out", required=True)
    q.add_argument("--fp16-storage", action="store_true")
    q.set_defaults(func=run_import)


def _jobs(args: argparse.Namespace) -> list[tuple[Path, list[list[float]]]]:
    jobs: list[tuple[Path, list[list[float]]]] = []
    if args.prompts:
        path = Path(args.prompts)
        try:
            spec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PromptError(f"{path}: cannot read the prompts file ({exc})") from exc
        if not isinstance(spec, dict):
            raise PromptError(f"{path}: expected an object mapping image paths to lists of boxes")
        for image, boxes in spec.items():
            image_path = Path(image) if Path(image).is_absolute() else path.parent / image
            jobs.append((image_path, boxes))
    if args.images:
        if not args.box:
            raise PromptError("give at least one --box X0,Y0,X1,Y1 (or --prompts FILE.json)")
        jobs.extend((Path(i), args.box) for i in args.images)
    if not jobs:
        raise PromptError("no image given")
    return jobs


def run_segment(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from engine.atomic import atomic_write_with
    from engine.imaging import load_image
    from engine.models import load_model
    from engine.predict import Predictor, validate_boxes
    from engine.sam import style_index

    jobs = _jobs(args)
    for image_path, _ in jobs:
        if not image_path.is_file():
            raise LungSamError(f"{image_path}: file not found")
    model = load_model(args.model, args.model_type)
    predictor = Predictor(model, device=args.device)
    style_index(predictor.sam, args.style)  # an unknown style fails before any work
    # Check every prompt against its image before writing anything.
    for image_path, boxes in jobs:
        image = load_image(image_path)
        try:
            validate_boxes(boxes, (image.height, image.width))
        except PromptError as exc:
            raise PromptError(f"{image_path.name}: {exc}") from exc
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for image_path, boxes in tqdm(jobs, disable=len(jobs) <= 3, unit="image"):
        image = load_image(image_path)
        predictor.set_image(image.pixels)
        masks = predictor.predict(boxes=boxes, style=args.style).masks[:, 0]
        outputs = {f"{image_path.stem}.png": masks.any(axis=0)}
        if len(masks) > 1:
            outputs.update({f"{image_path.stem}_box{i + 1}.png": m for i, m in enumerate(masks)})
        for name, mask in outputs.items():
            png = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8))
            atomic_write_with(out / name, lambda tmp, png=png: png.save(tmp, format="PNG"))
    print(f"wrote masks for {len(jobs)} image(s) to {out}")
    return 0


def run_models(args: argparse.Namespace) -> int:  # noqa: ARG001
    from engine.models import default_model_name, list_models
    from engine.sam import DEFAULT_STYLE

    default = default_model_name()
    entries = list_models()
    if not entries:
        print("no model installed")
    for entry in entries:
        meta = entry.meta
        size = (meta.get("weights") or {}).get("bytes")
        styles = ", ".join(meta.get("mask_styles") or [DEFAULT_STYLE])
        storage = (meta.get("weights") or {}).get("storage_dtype", "float32")
        kind = "INT8" if meta.get("int8") else f"float ({storage} on disk)"
        where = "shipped" if entry.shipped else "user"
        mark = "*" if entry.name == default else " "
        mb = f"{size / 1e6:.1f} MB" if isinstance(size, int) else "? MB"
        print(f"{mark} {entry.name:<28} {kind:<26} {mb:>9}  {where:<7}  styles: {styles}")
    if default:
        print("* default (used when --model is not given)")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from engine.models import import_checkpoint

    folder = import_checkpoint(
        args.checkpoint, args.out, args.model_type, "float16" if args.fp16_storage else "float32"
    )
    print(f"imported {args.checkpoint} -> {folder}")
    return 0
