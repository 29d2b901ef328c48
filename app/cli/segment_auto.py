"""`lungsam segment --auto`: zero-click masks for images or folders, and a CSV of what was found.

Per image NAME (the file stem): ``NAME.png`` (both lungs), ``NAME_left.png`` and
``NAME_right.png`` (the PATIENT's left and right lung: the left lung is on the image's right),
and one row of ``OUT/auto.csv``: the proposed both-lung box in original pixels, the quality
score (0..1, higher = more trustworthy; sort ascending to review the doubtful first), the
lung areas (cm² when the file carries a pixel spacing, else px²) and a status. An unreadable
file gets a row with its message and the run goes on; the exit code is then 3.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from engine.errors import LungSamError

AUTO_CSV = "auto.csv"
COLUMNS = ("name", "x0", "y0", "x1", "y1", "quality", "left_area", "right_area", "both_area", "area_unit",
           "spacing_source", "status", "file")
EXIT_SOME_UNREADABLE = 3


def expand_images(items: list[str]) -> list[Path]:
    """Files as given, folders as their supported image files (sorted, not recursive)."""
    from engine.imaging import is_supported_image

    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.is_file() and is_supported_image(p)))
        elif path.is_file():
            paths.append(path)
        else:
            raise LungSamError(f"{path}: file not found")
    if not paths:
        raise LungSamError("no image found in " + ", ".join(items))
    return paths


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def run_auto(args: argparse.Namespace) -> int:
    from PIL import Image
    from tqdm import tqdm

    from engine.atomic import atomic_write_bytes, atomic_write_with
    from engine.measure import lung_areas_by_image_side
    from engine.models import load_model
    from engine.predict import Predictor
    from engine.propose import default_workers, propose_many
    from engine.sam import style_index

    if args.box or args.point or args.prompts:
        raise LungSamError("--auto proposes the lungs itself: leave out --box, --point and --prompts")
    paths = expand_images(args.images)
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})[0]
        raise LungSamError(f"two images are named {dup!r}: their masks would overwrite each other")
    model = load_model(args.model, args.model_type)
    predictor = Predictor(model, device=args.device)
    style_index(predictor.sam, args.style)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, unreadable = [], 0
    for result in tqdm(propose_many(predictor, paths, args.style, workers=default_workers()), total=len(paths), unit="image",
                       disable=len(paths) <= 3):
        row = {"name": result.path.stem, "file": result.path.name}
        if not result.ok or result.proposal is None or result.image is None:
            unreadable += 1
            row.update(status=f"unreadable: {result.error}", quality=_fmt(0.0))
            rows.append(row)
            print(f"{result.path.name}: {result.error}")
            continue
        prop = result.proposal
        # rows of masks: image-left lung (the patient's right), image-right lung (patient's left)
        patient_right, patient_left = prop.masks[0], prop.masks[1]
        areas = lung_areas_by_image_side(prop.masks[0], prop.masks[1], result.image.spacing)
        outputs = {"": prop.union, "_left": patient_left, "_right": patient_right}
        for suffix, mask in outputs.items():
            png = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8))
            atomic_write_with(out / f"{result.path.stem}{suffix}.png", lambda tmp, png=png: png.save(tmp, format="PNG"))
        box = prop.union_box
        measured = areas.row(result.path.stem)  # the same rounding as measurements.csv of an export
        row.update(
            quality=_fmt(result.quality),
            left_area=measured["left_area"], right_area=measured["right_area"], both_area=measured["both_area"],
            area_unit=areas.unit, spacing_source=areas.spacing_source or "",
            status="ok" if prop.found else prop.problem,
        )
        if box is not None:
            row.update(x0=int(box[0]), y0=int(box[1]), x1=int(box[2]), y1=int(box[3]))
        rows.append(row)
    text = _csv_text(rows)
    atomic_write_bytes(out / AUTO_CSV, text.encode("utf-8"))
    done = len(rows) - unreadable
    print(f"wrote zero-click masks for {done} image(s) to {out} ({AUTO_CSV}: one row per image)")
    if unreadable:
        print(f"{unreadable} image(s) could not be read; their rows in {AUTO_CSV} say why")
        return EXIT_SOME_UNREADABLE
    return 0


def _csv_text(rows: list[dict[str, object]]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in COLUMNS})
    return buffer.getvalue()
