"""Image/mask folders -> arrays in the model's input frame, decoded once and cached.

Decoding thousands of PNGs every epoch would make data loading the bottleneck on a 2-core
machine, so each set is decoded once (with the engine's own loader and resize), kept in
memory as uint8 and optionally cached on disk as .npz keyed by the file list and size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.errors import LungSamError, TrainingError
from engine.imaging import SUPPORTED_EXTENSIONS, load_image
from engine.project import is_project
from engine.sam import as_rgb, resize_to_input
from trainer.data.lung_labels import labels_from_masks

log = logging.getLogger(__name__)
MASK_DIRS = ("masks", "masks_left", "masks_right")


@dataclass(frozen=True)
class Pair:
    """One training example on disk; per-lung masks are the patient's left/right lung."""

    name: str
    image: Path
    mask: Path | None
    mask_left: Path | None = None
    mask_right: Path | None = None


def _by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
    }


def project_pairs(root: Path) -> list[Pair]:
    """The clinician-corrected masks of an annotation project (latest corrected version each)."""
    from engine.project import ProjectStore

    with ProjectStore.open(root, read_only=True) as store:
        items = store.corrected_items()
    pairs = []
    for image, masks in items:
        pairs.append(Pair(
            image.relative_to(root).as_posix(), image, masks.get("lungs"),
            masks.get("left lung"), masks.get("right lung"),
        ))
    if not pairs:
        raise TrainingError(f"{root}: the project has no corrected masks yet")
    return pairs


def find_pairs(root: str | Path, exclude: Iterable[str] = ()) -> list[Pair]:
    """Pairs ``root/images/X.*`` with ``root/masks/X.png`` (and masks_left/right if present),
    or the corrected masks of a LungSAM project folder (one with ``.lungsam/``)."""
    root = Path(root)
    if not root.is_dir():
        raise TrainingError(f"{root}: data folder not found")
    if is_project(root):
        skip = {Path(e).stem for e in exclude}
        return [p for p in project_pairs(root) if Path(p.name).stem not in skip]
    images = _by_stem(root / "images")
    if not images:
        raise TrainingError(f"{root}: no images found in {root / 'images'}")
    masks, lefts, rights = (_by_stem(root / d) for d in MASK_DIRS)
    if not masks:
        raise TrainingError(f"{root}: no masks found in {root / 'masks'}")
    skip = {Path(e).stem for e in exclude}
    pairs = []
    for stem, image in images.items():
        if stem in skip or stem not in masks:
            continue
        pairs.append(Pair(stem, image, masks[stem], lefts.get(stem), rights.get(stem)))
    if not pairs:
        raise TrainingError(f"{root}: no image has a mask with the same file name")
    return pairs


@dataclass
class SampleSet:
    """Decoded examples in the input frame (longest side = ``size``, padded square).

    ``images``: N x S x S x 3 uint8; ``labels``: N x S x S uint8 (0 background, 1 lung on
    the image's left, 2 lung on the image's right); ``input_sizes``: N x 2 (h, w) of the
    unpadded region; ``original_sizes``: N x 2; ``styles``: N output tokens, the mask style
    (annotation convention) each example's masks follow (default all 0).
    """

    names: list[str]
    images: np.ndarray
    labels: np.ndarray
    input_sizes: np.ndarray
    original_sizes: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)
    styles: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.styles is None:
            self.styles = np.zeros(len(self.names), np.int64)

    def __len__(self) -> int:
        return len(self.names)

    def with_style(self, token: int) -> SampleSet:
        """The same examples, all labelled with mask style ``token``."""
        return dataclasses.replace(self, styles=np.full(len(self.names), token, np.int64))

    def repeated(self, times: int) -> SampleSet:
        """Each example ``times`` times: oversamples a small set mixed into a large one."""
        return self.subset(np.tile(np.arange(len(self)), max(1, times)))

    def subset(self, indices: Iterable[int]) -> SampleSet:
        idx = np.asarray(list(indices), dtype=np.int64)
        return SampleSet(
            [self.names[i] for i in idx],
            self.images[idx],
            self.labels[idx],
            self.input_sizes[idx],
            self.original_sizes[idx],
            list(self.skipped),
            self.styles[idx],
        )


def concat_sets(sets: list[SampleSet]) -> SampleSet:
    """One set from several (same input size), keeping every example's style."""
    if len(sets) == 1:
        return sets[0]
    return SampleSet(
        [n for s in sets for n in s.names],
        np.concatenate([s.images for s in sets]),
        np.concatenate([s.labels for s in sets]),
        np.concatenate([s.input_sizes for s in sets]),
        np.concatenate([s.original_sizes for s in sets]),
        [k for s in sets for k in s.skipped],
        np.concatenate([s.styles for s in sets]),
    )


def read_mask(path: Path, shape: tuple[int, int], image_name: str) -> np.ndarray:
    """A lung mask file as bool (pixels above 127; colour masks by their brightest channel),
    refused with a :class:`TrainingError` naming both files when its size is not the image's.
    Training, evaluation and the trainer pane's comparison all read masks through here."""
    mask = load_image(path).pixels
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if mask.shape != shape:
        raise TrainingError(
            f"{path.name}: mask is {mask.shape[1]}x{mask.shape[0]} but image {image_name} "
            f"is {shape[1]}x{shape[0]}"
        )
    return mask > 127


def _read_mask(path: Path, shape: tuple[int, int], image_name: str) -> np.ndarray:
    return read_mask(path, shape, image_name).astype(np.uint8)


def load_pair(pair: Pair, size: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]]:
    """(image S x S x 3, labels S x S, input (h, w), original (H, W)); raises LungSamError.

    A pair may lack the both-lungs mask when only per-lung masks were drawn; the union is
    then their sum.
    """
    image = load_image(pair.image).pixels
    shape = image.shape[:2]
    left = _read_mask(pair.mask_left, shape, pair.image.name) if pair.mask_left else None
    right = _read_mask(pair.mask_right, shape, pair.image.name) if pair.mask_right else None
    if pair.mask is not None:
        union = _read_mask(pair.mask, shape, pair.image.name)
    elif left is not None or right is not None:
        union = np.maximum(left if left is not None else 0, right if right is not None else 0).astype(np.uint8)
    else:
        raise TrainingError(f"{pair.name}: no mask")
    if not union.any():
        raise TrainingError(f"{pair.name}: mask is empty")
    labels = labels_from_masks(union, left, right)
    resized = resize_to_input(as_rgb(image), size)
    h, w = resized.shape[:2]
    small_labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    img_sq = np.zeros((size, size, 3), np.uint8)
    lab_sq = np.zeros((size, size), np.uint8)
    img_sq[:h, :w] = resized
    lab_sq[:h, :w] = small_labels
    return img_sq, lab_sq, (h, w), shape


def split_pairs(pairs: list[Pair], val_fraction: float, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """Deterministic train / held-back split that never puts one patient on both sides.

    The group of an image is its DICOM PatientID when it has one, else the image itself.
    """
    import random

    groups: dict[str, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(patient_key(pair), []).append(pair)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_val = max(1, round(val_fraction * len(keys))) if len(keys) > 1 else 0
    val = [p for k in keys[:n_val] for p in groups[k]]
    train = [p for k in keys[n_val:] for p in groups[k]]
    return train, val


def sample_pairs(pairs: list[Pair], n: int, seed: int = 0) -> list[Pair]:
    """``n`` of ``pairs`` drawn at random (seeded), kept in their original order.

    Why not the first ``n``: data sets list their files by name, and names often encode the
    class. COVID-QU-Ex val lists 233 Normal films, then 466 COVID, then 233 non-COVID
    pneumonia: its first 400 held no pneumonia film and scored 0.971 Dice where the whole set
    scores 0.962, so a prefix chose the ``best/`` epoch on the easiest images.
    """
    import random

    if n >= len(pairs):
        return list(pairs)
    chosen = sorted(random.Random(seed).sample(range(len(pairs)), n))
    return [pairs[i] for i in chosen]


def patient_key(pair: Pair) -> str:
    if pair.image.suffix.lower() in (".dcm", ".dicom") or not pair.image.suffix:
        try:
            import pydicom

            ds = pydicom.dcmread(pair.image, stop_before_pixels=True, specific_tags=["PatientID"])
            if getattr(ds, "PatientID", ""):
                return f"patient:{ds.PatientID}"
        except Exception:
            pass
    return f"file:{pair.name}"


def _cache_key(pairs: list[Pair], size: int) -> str:
    digest = hashlib.sha256(str(size).encode())
    for p in pairs:
        for f in (p.image, p.mask, p.mask_left, p.mask_right):
            if f is not None:
                st = f.stat()
                digest.update(f"{f}|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def load_set(
    pairs: list[Pair],
    size: int,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SampleSet:
    """Decode every pair once; bad pairs are skipped with a warning naming the file."""
    cache_file = Path(cache_dir) / f"set-{_cache_key(pairs, size)}.npz" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        try:
            with np.load(cache_file, allow_pickle=False) as data:
                return SampleSet(
                    list(data["names"]), data["images"], data["labels"], data["input_sizes"],
                    data["original_sizes"],
                    [tuple(s.split("\t", 1)) for s in data["skipped"]],
                )
        except (OSError, ValueError, KeyError):
            cache_file.unlink(missing_ok=True)
    names, images, labels, in_sizes, orig_sizes, skipped = [], [], [], [], [], []
    for i, pair in enumerate(pairs):
        try:
            img, lab, in_size, orig = load_pair(pair, size)
        except LungSamError as exc:
            log.warning("skipping %s: %s", pair.name, exc)
            skipped.append((pair.name, str(exc)))
            continue
        names.append(pair.name)
        images.append(img)
        labels.append(lab)
        in_sizes.append(in_size)
        orig_sizes.append(orig)
        if progress:
            progress(i + 1, len(pairs))
    if not names:
        raise TrainingError("no usable image/mask pair (all were skipped: " + (skipped[0][1] if skipped else "") + ")")
    result = SampleSet(
        names,
        np.stack(images),
        np.stack(labels),
        np.asarray(in_sizes, np.int64),
        np.asarray(orig_sizes, np.int64),
        skipped,
    )
    if cache_file is not None:
        from engine.atomic import atomic_write_with

        try:
            atomic_write_with(
                cache_file,
                lambda tmp: np.savez(
                    open(tmp, "wb"), names=np.asarray(result.names), images=result.images,
                    labels=result.labels, input_sizes=result.input_sizes,
                    original_sizes=result.original_sizes,
                    skipped=np.asarray(["\t".join(s) for s in skipped], dtype=str),
                ),
            )
        except OSError as exc:
            log.warning("could not write the data cache %s: %s", cache_file, exc)
    return result
