"""`lungsam segment` and `lungsam import-checkpoint` (engine only: never imports Qt)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engine.errors import LungSamError, PromptError


def _numbers(text: str, count: int, message: str) -> list[float]:
    """'A,B,...' -> exactly ``count`` floats, else argparse's error ``message``."""
    try:
        values = [float(p) for p in text.replace(" ", "").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(message) from None
    if len(values) != count:
        raise argparse.ArgumentTypeError(message)
    return values


def parse_box(text: str) -> list[float]:
    """'X0,Y0,X1,Y1' -> four floats (argparse type)."""
    return _numbers(text, 4, f"box '{text}' must be four numbers X0,Y0,X1,Y1")


def parse_point(text: str) -> list[float]:
    """'X,Y,LABEL' -> [x, y, label] (argparse type; label 1 lung, 0 not lung)."""
    return _numbers(text, 3, f"point '{text}' must be X,Y,LABEL (LABEL 1 lung, 0 not lung)")


def add_segment_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment lungs in images from box/point prompts or with none (--auto), "
                       "write PNG masks")
    p.add_argument("images", nargs="*", help="image files (PNG, JPEG, TIFF, DICOM); with --auto also folders")
    p.add_argument("--auto", action="store_true",
                   help="zero-click: propose both lungs without prompts; writes NAME.png, NAME_left.png, "
                   "NAME_right.png (the patient's left/right lung) and OUT/auto.csv (box, quality, areas)")
    p.add_argument("--box", action="append", type=parse_box, default=[],
                   help="X0,Y0,X1,Y1 in image pixels; repeat for several boxes (e.g. each lung)")
    p.add_argument("--point", action="append", type=parse_point, default=[],
                   help="X,Y,LABEL click in image pixels (LABEL 1 lung, 0 not lung); repeat; refines "
                   "the box that contains it (else the nearest), or alone without --box")
    p.add_argument("--prompts", help='JSON file {"image path": [[x0,y0,x1,y1], ...]} or '
                   '{"image path": {"boxes": [[x0,y0,x1,y1], ...], "points": [[x,y,label], ...]}}')
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


Job = tuple[Path, object, list[list[float]]]  # image, boxes (validated later), points (x, y, label)


def _spec_prompts(path: Path, image: str, spec: object) -> tuple[object, list]:
    """One entry of a prompts file: a list of boxes (checked later by validate_boxes, whose
    messages name what is wrong), or {"boxes": [...], "points": [[x, y, label], ...]}."""
    if not (isinstance(spec, dict) and ({"boxes", "points"} & set(spec))):
        return spec, []
    unknown = set(spec) - {"boxes", "points"}
    if unknown:
        raise PromptError(f"{path}: {image}: unknown key(s) {', '.join(sorted(unknown))} (use boxes, points)")
    boxes, points = spec.get("boxes", []), spec.get("points", [])
    if not isinstance(boxes, list) or not isinstance(points, list):
        raise PromptError(f"{path}: {image}: boxes and points must be lists")
    for point in points:
        if not isinstance(point, list) or len(point) != 3:
            raise PromptError(f"{path}: {image}: each point must be [x, y, label]")
    if not boxes and not points:
        raise PromptError(f"{path}: {image}: give at least one box or point")
    return boxes, points


def _jobs(args: argparse.Namespace) -> list[Job]:
    jobs: list[Job] = []
    if args.prompts:
        path = Path(args.prompts)
        try:
            spec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PromptError(f"{path}: cannot read the prompts file ({exc})") from exc
        if not isinstance(spec, dict):
            raise PromptError(f"{path}: expected an object mapping image paths to lists of boxes")
        for image, entry in spec.items():
            image_path = Path(image) if Path(image).is_absolute() else path.parent / image
            jobs.append((image_path, *_spec_prompts(path, image, entry)))
    if args.images:
        if not args.box and not args.point:
            raise PromptError("give at least one --box X0,Y0,X1,Y1 or --point X,Y,LABEL (or --prompts FILE.json)")
        jobs.extend((Path(i), args.box, args.point) for i in args.images)
    if not jobs:
        raise PromptError("no image given")
    return jobs


def assign_points(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Index of the box each point refines: the smallest box that contains it, else the
    nearest box (distance from the point to the box). ``boxes`` B x 4, ``points`` N x 2
    (x, y), original pixels."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    owners = []
    for x, y in points:
        dx = np.maximum(np.maximum(boxes[:, 0] - x, x - boxes[:, 2]), 0)
        dy = np.maximum(np.maximum(boxes[:, 1] - y, y - boxes[:, 3]), 0)
        distance = np.hypot(dx, dy)
        owners.append(min(range(len(boxes)), key=lambda b, d=distance: (d[b], area[b])))
    return np.asarray(owners, dtype=np.int64)


def predict_job(predictor, boxes: list, points: list, style: str | None) -> np.ndarray:
    """bool K x H x W: one mask per box (its points are clicks on its mask, in the order given,
    as the window applies them), or one for points alone (the points are the prompt)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if not boxes:
        return predictor.predict(points=pts[:, :2], point_labels=pts[:, 2], style=style).masks[:, 0]
    if not len(pts):
        return predictor.predict(boxes=boxes, style=style).masks[:, 0]
    box_arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    owner = assign_points(box_arr, pts[:, :2])
    from engine.predict import box_then_clicks

    masks = []
    for b, box in enumerate(box_arr):
        mine = pts[owner == b]  # clicked in the order given, as in the window
        masks.append(box_then_clicks(predictor, box, [tuple(p) for p in mine[:, :2]], mine[:, 2].astype(int), style))
    return np.stack(masks)


def run_segment(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from engine.atomic import atomic_write_with
    from engine.imaging import load_image
    from engine.models import load_model
    from engine.predict import Predictor, validate_boxes, validate_points
    from engine.sam import style_index

    if args.auto:
        from app.cli.segment_auto import run_auto

        return run_auto(args)
    jobs = _jobs(args)
    for image_path, _, _ in jobs:
        if not image_path.is_file():
            raise LungSamError(f"{image_path}: file not found")
    model = load_model(args.model, args.model_type)
    predictor = Predictor(model, device=args.device)
    style_index(predictor.sam, args.style)  # an unknown style fails before any work
    # Check every prompt against its image before writing anything.
    for image_path, boxes, points in jobs:
        image = load_image(image_path)
        try:
            if boxes is not None and (not isinstance(boxes, list) or boxes or not points):
                validate_boxes(boxes, (image.height, image.width))  # an empty list alone is refused here
            if points:
                pts = np.asarray(points, dtype=np.float64)
                validate_points(pts[:, :2], pts[:, 2], (image.height, image.width))
        except (PromptError, IndexError, ValueError, TypeError) as exc:
            raise PromptError(f"{image_path.name}: {exc}") from exc
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for image_path, boxes, points in tqdm(jobs, disable=len(jobs) <= 3, unit="image"):
        image = load_image(image_path)
        predictor.set_image(image.pixels)
        masks = predict_job(predictor, boxes, points, args.style)
        outputs = {f"{image_path.stem}.png": masks.any(axis=0)}
        if len(masks) > 1:
            outputs.update({f"{image_path.stem}_box{i + 1}.png": m for i, m in enumerate(masks)})
        for name, mask in outputs.items():
            png = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8))
            atomic_write_with(out / name, lambda tmp, png=png: png.save(tmp, format="PNG"))
    print(f"wrote masks for {len(jobs)} image(s) to {out}")
    return 0


def run_models(args: argparse.Namespace) -> int:
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
        twin = meta.get("twin") or {}
        note = f"  (FP32 twin of {twin['of']})" if isinstance(twin, dict) and twin.get("of") else ""
        print(f"{mark} {entry.name:<28} {kind:<26} {mb:>9}  {where:<7}  styles: {styles}{note}")
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
