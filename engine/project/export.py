"""Exports of annotations for other tools: PNG masks, COCO JSON (RLE) and DICOM-SEG.

Every file is written atomically (engine.atomic), so an interrupted export never leaves a
half-written file that another tool would read as a valid but wrong mask.

COCO RLE here is the *compressed string* form used by pycocotools (``mask.encode``): runs
over the column-major (Fortran-order) flattened mask, starting with a (possibly empty) run of
background, written as the LEB128-like 6-bit ASCII string, counts after the third stored as
differences to the count two before. :func:`rle_decode` also accepts the uncompressed form
(``counts`` as a list of ints). Annotations carry ``iscrowd: 0``: RLE is legal for single
objects, and ``iscrowd: 1`` would make COCOeval treat the lungs as ignore regions.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from engine.atomic import atomic_write_with
from engine.errors import LungSamError
from engine.measure import tight_box
from engine.project.store import (
    LABELS,
    Annotation,
    ProjectStore,
    encode_mask_png,
    label_slug,
)

__all__ = [
    "ExportError",
    "export_coco",
    "export_dicom_seg",
    "export_masks",
    "export_png",
    "mask_filename",
    "rle_decode",
    "rle_encode",
]


class ExportError(LungSamError):
    """An export cannot be written (bad source file, size mismatch, disk)."""


# ----------------------------------------------------------------------------- PNG


def mask_filename(image_rel_path: str, label: str) -> str:
    """``<image stem>_<label with spaces as _>.png``, e.g. ``cxr1_left_lung.png``."""
    return f"{PurePosixPath(image_rel_path).stem}_{label_slug(label)}.png"


def export_masks(annotation: Annotation) -> dict[str, np.ndarray]:
    """What every mask export writes for one image: always the union ``lungs`` (both lungs
    however they were drawn), plus ``right lung`` / ``left lung`` when drawn per lung."""
    masks = {label: np.asarray(m, dtype=bool) for label, m in annotation.masks.items()}
    if not masks:
        return {}
    union = np.zeros(next(iter(masks.values())).shape, dtype=bool)
    for mask in masks.values():
        union |= mask
    out = {"lungs": union}
    out.update({label: masks[label] for label in ("right lung", "left lung") if label in masks})
    return out


def annotations_of(source: ProjectStore | Annotation | Iterable[Annotation], kind: str | None = None) -> tuple[Iterable[Annotation], bool]:
    """(annotations, mirror sub-folders?) of what an export was given."""
    if isinstance(source, Annotation):
        return [source], False
    if isinstance(source, ProjectStore):
        return (ann for _, ann in source.latest_annotations(kind)), True
    return source, True


def export_png(
    source: ProjectStore | Annotation | Iterable[Annotation],
    out_dir: str | Path,
    kind: str | None = None,
) -> list[Path]:
    """Write 0/255 PNGs at original size (:func:`export_masks` names); returns the paths.

    A single :class:`Annotation` goes straight into ``out_dir``. For a store (newest
    annotation of ``kind``, or of any kind, per image) or an iterable of annotations the
    image's sub-folders are mirrored, so equal file names in different folders cannot clash.
    """
    out_dir = Path(out_dir)
    items, mirror = annotations_of(source, kind)
    written = []
    for ann in items:
        folder = out_dir / PurePosixPath(ann.image_rel_path).parent if mirror else out_dir
        for label, mask in export_masks(ann).items():
            path = folder / mask_filename(ann.image_rel_path, label)
            write_export(path, lambda p, m=mask: p.write_bytes(encode_mask_png(m)))
            written.append(path)
    return written


# ----------------------------------------------------------------------------- COCO RLE


def rle_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO counts: alternating run lengths over the column-major mask, the
    first run being background (0 when the first pixel is foreground)."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    counts = np.diff(bounds).tolist()
    return [0, *counts] if flat[0] else counts


def _counts_to_string(counts: Sequence[int]) -> str:
    out = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift: negative differences end in all-ones
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr(c + 48 + (0x20 if more else 0)))
    return "".join(out)


def _string_to_counts(text: str) -> list[int]:
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        x = shift = 0
        more = True
        while more:
            c = ord(text[pos]) - 48
            x |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and c & 0x10:
                x |= -1 << shift
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_encode(mask: np.ndarray) -> dict:
    """COCO compressed RLE ``{"size": [h, w], "counts": str}`` of a bool HxW mask."""
    mask = np.asarray(mask)
    return {
        "size": [int(mask.shape[0]), int(mask.shape[1])],
        "counts": _counts_to_string(rle_counts(mask)),
    }


def rle_decode(rle: dict) -> np.ndarray:
    """bool HxW mask from COCO RLE, compressed (str/bytes) or uncompressed (list) counts."""
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if isinstance(counts, str):
        counts = _string_to_counts(counts)
    counts = [int(c) for c in counts]
    if sum(counts) != height * width or any(c < 0 for c in counts):
        raise ExportError(f"RLE counts do not describe a {height} x {width} mask")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((height, width), order="F")


def _bbox(mask: np.ndarray) -> list[int]:
    """COCO's x, y, width, height of a non-empty mask."""
    box = tight_box(mask)
    assert box is not None  # the caller skips empty masks
    x0, y0, x1, y1 = (int(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def export_coco(
    store: ProjectStore,
    out_path: str | Path,
    labels: Sequence[str] = LABELS,
    kind: str | None = None,
) -> Path:
    """One COCO instance-segmentation JSON for the project's newest annotation per image.

    ``images`` lists only annotated images (file_name = path relative to the project folder,
    image id = the store's image id); ``categories`` are ``labels`` (ids 1..n); one annotation
    per non-empty label mask with RLE, bbox [x, y, w, h] and area in pixels. ``kind``:
    "corrected" for clinician-final masks only; None takes the newest of either kind.
    """
    unknown = [label for label in labels if label not in LABELS]
    if unknown:
        raise ExportError(f"unknown label(s) {unknown}; expected some of {list(LABELS)}")
    category = {label: i + 1 for i, label in enumerate(labels)}
    images, annotations = [], []
    for record, ann in store.latest_annotations(kind):
        masks = {label: m for label, m in ann.masks.items() if label in category}
        if not masks:
            continue
        height, width = next(iter(ann.masks.values())).shape
        images.append(
            {"id": record.id, "file_name": record.rel_path, "width": width, "height": height}
        )
        for label, mask in masks.items():
            area = int(mask.sum())
            if area == 0:
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": record.id,
                    "category_id": category[label],
                    "segmentation": rle_encode(mask),
                    "area": area,
                    "bbox": _bbox(mask),
                    "iscrowd": 0,
                    "lungsam_kind": ann.kind,
                    "lungsam_version": ann.version,
                }
            )
    document = {
        "info": {
            "description": f"LungSAM annotations of {store.root.name}",
            "version": "1.0",
            "date_created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i, "name": label, "supercategory": "lung"} for label, i in category.items()
        ],
    }
    out_path = Path(out_path)
    write_export(out_path, lambda p: p.write_text(json.dumps(document), encoding="utf-8"))
    return out_path


# ----------------------------------------------------------------------------- DICOM-SEG

_SCT_CODES = {  # SNOMED CT: segmented property types
    "lungs": ("39607008", "Lung"),
    "right lung": ("3341006", "Right lung"),
    "left lung": ("44029006", "Left lung"),
}


def export_dicom_seg(
    annotation: Annotation,
    source_dicom_path: str | Path,
    out_path: str | Path,
    series_number: int = 900,
    content_creator_name: str | None = None,
) -> Path:
    """DICOM Segmentation (BINARY, one segment per label) referencing the source image.

    Algorithm type is SEMIAUTOMATIC for every model-assisted mask (a model proposed, a person
    prompted and maybe corrected), with the model named; MANUAL only when no model drew it. For projection radiographs without patient geometry
    the SEG carries no pixel measures: the source image it references defines the grid.
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    source_path = Path(source_dicom_path)
    try:
        source = pydicom.dcmread(source_path, stop_before_pixels=True)
    except Exception as exc:
        raise ExportError(f"{source_path.name}: not a readable DICOM file ({exc})") from exc
    if not annotation.masks:
        raise ExportError(f"{annotation.image_rel_path}: the annotation has no masks to export")
    rows, cols = int(source.get("Rows", 0)), int(source.get("Columns", 0))
    shape = next(iter(annotation.masks.values())).shape
    if shape != (rows, cols):
        raise ExportError(
            f"{source_path.name}: the image is {cols} x {rows} pixels but the masks of "
            f"{annotation.image_rel_path} are {shape[1]} x {shape[0]}"
        )
    geometry = ("FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient")
    if not all(k in source for k in geometry) and "PixelSpacing" in source:
        del source.PixelSpacing  # see docstring: highdicom cannot re-read 2-D pixel measures
    # Model-assisted masks (a model drew them, a person may have corrected them) are
    # SEMIAUTOMATIC with the model identified: name, and version = its weights' sha256.
    manual = annotation.kind == "corrected" and not annotation.model_name
    algorithm = None
    if not manual:
        algorithm = hd.AlgorithmIdentificationSequence(
            name=annotation.model_name or "LungSAM",
            family=codes.cid7162.ArtificialIntelligence,
            version=(annotation.model_hash or "unknown")[:64],
        )
    unknown = [label for label in annotation.masks if label not in _SCT_CODES]
    if unknown:
        raise ExportError(f"unknown label(s) {unknown}; expected some of {list(LABELS)}")
    labels = [label for label in LABELS if label in annotation.masks]  # stable segment numbers
    descriptions = []
    for number, label in enumerate(labels, start=1):
        description = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=Code(_SCT_CODES[label][0], "SCT", _SCT_CODES[label][1]),
            algorithm_type="MANUAL" if manual else "SEMIAUTOMATIC",
            algorithm_identification=algorithm,
        )
        description.SegmentDescription = label
        descriptions.append(description)
    pixels = np.stack([annotation.masks[label] for label in labels], axis=-1)[None].astype(np.uint8)
    try:
        seg = hd.seg.Segmentation(
            source_images=[source],
            pixel_array=pixels,
            segmentation_type="BINARY",
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="LungSAM",
            manufacturer_model_name=annotation.model_name or "LungSAM",
            software_versions=_version(),
            device_serial_number="0",
            content_description=f"LungSAM {annotation.kind} v{annotation.version}"[:64],
            content_creator_name=content_creator_name,
            content_label="LUNGS",
            omit_empty_frames=False,
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ExportError(f"{source_path.name}: cannot build a DICOM-SEG for it ({exc})") from exc
    seg.SeriesDescription = f"LungSAM lung segmentation ({annotation.kind})"[:64]
    out_path = Path(out_path)
    write_export(out_path, lambda p: seg.save_as(p, enforce_file_format=True))
    return out_path


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lungsam")
    except PackageNotFoundError:
        return "0.1.0"


def _umask() -> int:
    """The process umask, read without changing it where Linux lets us (threads export)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_export(path: Path, writer) -> None:
    """Atomic write with the permissions of any file the user makes (0644 under umask 022):
    an export is for other people and tools, not private like mkstemp's 0600."""
    def write_and_open_up(tmp: Path) -> None:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())

    try:
        atomic_write_with(path, write_and_open_up)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write the export ({exc.strerror or exc})") from exc
