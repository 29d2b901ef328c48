"""engine.project.export: PNG, COCO (RLE) and DICOM-SEG round trips, decoded with independent readers."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import ComputedRadiographyImageStorage, DigitalXRayImageStorageForPresentation

from engine.project import (
    LABELS,
    Annotation,
    ExportError,
    ProjectStore,
    export_coco,
    export_dicom_seg,
    export_labelme,
    export_nifti,
    export_png,
    export_yolo,
    mask_filename,
    read_labelme,
    read_nifti,
    read_yolo,
    rle_counts,
    rle_decode,
    rle_encode,
)
from tests.conftest import DATA_ROOT
from tests.dicom_factory import ChestStudy, write_dicom


def lung_masks(height: int = 64, width: int = 80, shift: int = 0) -> dict[str, np.ndarray]:
    """Patient's right lung on the image's left, patient's left lung on the image's right."""
    yy, xx = np.mgrid[:height, :width]
    masks = {}
    for label, cx in (("right lung", 0.3), ("left lung", 0.7)):
        masks[label] = ((xx - cx * width - shift) / (0.14 * width)) ** 2 + (
            (yy - 0.5 * height) / (0.32 * height)
        ) ** 2 < 1
    masks["lungs"] = masks["right lung"] | masks["left lung"]
    return masks


def annotation(
    masks: dict[str, np.ndarray], kind: str = "corrected", rel: str = "cxr 1.dcm"
) -> Annotation:
    return Annotation(rel, 3, kind, "lungsam-int8", "abc123", 0.0, {}, masks)


def real_mask() -> np.ndarray:
    """A clinician-drawn lung mask from the shared data set, else a synthetic one."""
    folder = DATA_ROOT / "covidqu_ex" / "val" / "masks"
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not files:
        return lung_masks(256, 256)["lungs"]
    return np.asarray(Image.open(files[0]).convert("L")) > 127


# ------------------------------------------------------------------------ PNG


def test_png_export_of_one_annotation_decodes_to_the_masks(tmp_path: Path) -> None:
    masks = lung_masks()
    paths = export_png(annotation(masks), tmp_path / "out")
    assert sorted(p.name for p in paths) == [
        "cxr 1_left_lung.png",
        "cxr 1_lungs.png",
        "cxr 1_right_lung.png",
    ]
    for path in paths:
        pixels = np.asarray(Image.open(path))
        label = next(lab for lab in LABELS if mask_filename("cxr 1.dcm", lab) == path.name)
        assert pixels.dtype == np.uint8 and set(np.unique(pixels)) == {0, 255}
        np.testing.assert_array_equal(pixels == 255, masks[label])


def test_png_export_of_a_store_mirrors_subfolders(tmp_path: Path) -> None:
    root = tmp_path / "cxr"
    for rel in ("a/x.png", "b/x.png", "c.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    with ProjectStore.open(root) as store:
        store.save_annotation("a/x.png", {"lungs": lung_masks()["lungs"]}, "corrected")
        store.save_annotation("b/x.png", {"left lung": lung_masks(shift=3)["left lung"]}, "model")
        store.register_images(["c.png"])
        paths = export_png(store, tmp_path / "out")
        assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in paths) == [
            "a/x_lungs.png",
            "b/x_left_lung.png",
            "b/x_lungs.png",  # the union is always written, whatever was drawn
        ]
        assert export_png(store, tmp_path / "only", kind="corrected") == [
            tmp_path / "only" / "a" / "x_lungs.png"
        ]
    decoded = np.asarray(Image.open(tmp_path / "out" / "b" / "x_left_lung.png")) == 255
    np.testing.assert_array_equal(decoded, lung_masks(shift=3)["left lung"])
    union = np.asarray(Image.open(tmp_path / "out" / "b" / "x_lungs.png")) == 255
    np.testing.assert_array_equal(union, lung_masks(shift=3)["left lung"])


# ------------------------------------------------------------------------ COCO RLE


def test_rle_matches_hand_computed_coco_strings() -> None:
    # 2 x 5, column-major: 0 0 | 1 1 | 1 0 | 1 1 | 1 1 -> runs 2, 3, 1, 4
    mask = np.array([[0, 1, 1, 1, 1], [0, 1, 0, 1, 1]], dtype=bool)
    assert rle_counts(mask) == [2, 3, 1, 4]
    assert rle_encode(mask) == {"size": [2, 5], "counts": "2311"}
    # runs 0, 10, 2, 3: the 4th is stored as 3 - 10 = -7, one char 'I' in the 6-bit code
    mask = np.zeros((3, 5), dtype=bool)
    flat = np.zeros(15, dtype=bool)
    flat[:10] = True
    flat[12:] = True
    mask[:] = flat.reshape((3, 5), order="F")
    assert rle_encode(mask)["counts"] == "0:2I"
    np.testing.assert_array_equal(rle_decode({"size": [3, 5], "counts": "0:2I"}), mask)
    np.testing.assert_array_equal(rle_decode({"size": [3, 5], "counts": b"0:2I"}), mask)
    np.testing.assert_array_equal(rle_decode({"size": [3, 5], "counts": [0, 10, 2, 3]}), mask)


@settings(max_examples=150, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.booleans()))
def test_rle_round_trip_of_random_masks(mask: np.ndarray) -> None:
    rle = rle_encode(mask)
    np.testing.assert_array_equal(rle_decode(rle), mask)
    np.testing.assert_array_equal(
        rle_decode({"size": rle["size"], "counts": rle_counts(mask)}), mask
    )
    assert sum(rle_counts(mask)) == mask.size


def test_rle_round_trip_of_blobs_and_a_real_lung_mask() -> None:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:300, :260]
    blobs = np.zeros((300, 260), dtype=bool)
    for _ in range(12):
        cy, cx, r = rng.uniform(0, 300), rng.uniform(0, 260), rng.uniform(3, 60)
        blobs ^= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    for mask in (blobs, real_mask(), np.ones((5, 7), bool), np.zeros((5, 7), bool)):
        rle = rle_encode(mask)
        assert isinstance(rle["counts"], str) and rle["size"] == list(mask.shape)
        np.testing.assert_array_equal(rle_decode(rle), mask)


def test_rle_decode_refuses_counts_of_the_wrong_total() -> None:
    with pytest.raises(ExportError, match="3 x 5"):
        rle_decode({"size": [3, 5], "counts": [4, 4]})


def test_coco_export_round_trips_the_project(tmp_path: Path) -> None:
    root = tmp_path / "cxr"
    root.mkdir()
    for name in ("p1.png", "p2.png", "p3.png"):
        (root / name).write_bytes(b"x")
    first, real = lung_masks(), {"lungs": real_mask()}
    with ProjectStore.open(root) as store:
        store.save_annotation("p1.png", first, "corrected")
        store.save_annotation("p2.png", lung_masks(*real["lungs"].shape), "model")
        store.save_annotation("p2.png", real, "corrected")
        store.register_images(["p3.png"])  # unannotated: not exported
        out = export_coco(store, tmp_path / "coco" / "lungs.json")
        ids = {r.rel_path: r.id for r in store.list_images()}
    coco = json.loads(out.read_text())
    assert [c["name"] for c in coco["categories"]] == list(LABELS)
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3]
    images = {im["file_name"]: im for im in coco["images"]}
    assert set(images) == {"p1.png", "p2.png"}
    assert (images["p1.png"]["height"], images["p1.png"]["width"]) == (64, 80)
    assert (images["p2.png"]["height"], images["p2.png"]["width"]) == real["lungs"].shape
    names = {c["id"]: c["name"] for c in coco["categories"]}
    expected = {("p1.png", label): m for label, m in first.items()} | {
        ("p2.png", "lungs"): real["lungs"]
    }
    found = {}
    for ann in coco["annotations"]:
        file_name = next(f for f, im in images.items() if im["id"] == ann["image_id"])
        assert ann["image_id"] == ids[file_name] and ann["iscrowd"] == 0
        mask = rle_decode(ann["segmentation"])
        found[(file_name, names[ann["category_id"]])] = mask
        rows, cols = np.nonzero(mask)
        assert ann["bbox"] == [
            cols.min(),
            rows.min(),
            cols.max() - cols.min() + 1,
            rows.max() - rows.min() + 1,
        ]
        assert ann["area"] == mask.sum()
    assert set(found) == set(expected)
    for key, mask in expected.items():
        np.testing.assert_array_equal(found[key], mask)
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])


def test_coco_export_of_corrected_only_and_label_subset(tmp_path: Path) -> None:
    root = tmp_path / "cxr"
    root.mkdir()
    (root / "p1.png").write_bytes(b"x")
    (root / "p2.png").write_bytes(b"x")
    with ProjectStore.open(root) as store:
        store.save_annotation("p1.png", lung_masks(), "corrected")
        store.save_annotation("p1.png", lung_masks(shift=4), "model")
        store.save_annotation("p2.png", lung_masks(), "model")
        coco = json.loads(
            export_coco(
                store, tmp_path / "c.json", labels=("left lung",), kind="corrected"
            ).read_text()
        )
        with pytest.raises(ExportError, match="unknown label"):
            export_coco(store, tmp_path / "bad.json", labels=("heart",))
    assert [im["file_name"] for im in coco["images"]] == ["p1.png"]
    assert coco["categories"] == [{"id": 1, "name": "left lung", "supercategory": "lung"}]
    (ann,) = coco["annotations"]
    assert ann["lungsam_kind"] == "corrected" and ann["lungsam_version"] == 1
    np.testing.assert_array_equal(rle_decode(ann["segmentation"]), lung_masks()["left lung"])


# ------------------------------------------------------------------------ DICOM-SEG


def synthetic_dicom(path: Path, modality: str = "DX", rows: int = 64, cols: int = 80) -> Dataset:
    """A small, valid-looking projection radiograph (no patient geometry, like most CXRs)."""
    pixels = np.random.default_rng(0).integers(0, 4096, (rows, cols), dtype=np.uint16)
    sop_class = (
        DigitalXRayImageStorageForPresentation
        if modality == "DX"
        else ComputedRadiographyImageStorage
    )
    study = ChestStudy("19700101", "F", "20240105", "101500", study_id="1", accession="A1")
    return write_dicom(
        path,
        pixels,
        patient_id="LS0001",
        patient_name="Test^Patient",
        study=study,
        modality=modality,
        sop_class=sop_class,
        pixel_spacing=[0.4, 0.4],
        imager_pixel_spacing=[0.4, 0.4],
    )


def test_dicom_seg_round_trip_references_the_source(tmp_path: Path) -> None:
    source = synthetic_dicom(tmp_path / "cxr.dcm", "CR")
    masks = lung_masks()
    two = {"right lung": masks["right lung"], "left lung": masks["left lung"]}
    drawn_by_hand = Annotation("cxr 1.dcm", 3, "corrected", None, None, 0.0, {}, two)  # no model
    out = export_dicom_seg(drawn_by_hand, tmp_path / "cxr.dcm", tmp_path / "seg" / "cxr_seg.dcm")
    seg = hd.seg.segread(out)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.PatientID == "LS0001"
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == source.SeriesInstanceUID
    assert (
        referenced.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    )
    segments = {s.SegmentNumber: s for s in seg.SegmentSequence}
    assert [
        (s.SegmentLabel, s.SegmentDescription, s.SegmentAlgorithmType) for s in segments.values()
    ] == [("right lung", "right lung", "MANUAL"), ("left lung", "left lung", "MANUAL")]
    assert segments[2].SegmentedPropertyTypeCodeSequence[0].CodeValue == "44029006"  # SCT left lung
    pixels = seg.get_pixels_by_source_instance(
        [source.SOPInstanceUID], segment_numbers=[1, 2], combine_segments=False
    )
    assert pixels.shape == (1, 64, 80, 2)
    np.testing.assert_array_equal(pixels[0, :, :, 0].astype(bool), two["right lung"])
    np.testing.assert_array_equal(pixels[0, :, :, 1].astype(bool), two["left lung"])
    again = hd.seg.Segmentation.from_dataset(pydicom.dcmread(out))
    assert again.SOPInstanceUID == seg.SOPInstanceUID


def test_dicom_seg_of_model_output_is_semiautomatic_with_the_model_named(tmp_path: Path) -> None:
    synthetic_dicom(tmp_path / "dx.dcm", "DX")
    out = export_dicom_seg(
        annotation(lung_masks(), kind="model"), tmp_path / "dx.dcm", tmp_path / "s.dcm"
    )
    seg = hd.seg.segread(out)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == list(LABELS)
    for segment in seg.SegmentSequence:
        assert segment.SegmentAlgorithmType == "SEMIAUTOMATIC"
        assert (
            segment.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "lungsam-int8"
        )
    pixels = seg.get_pixels_by_source_instance(
        [pydicom.dcmread(tmp_path / "dx.dcm").SOPInstanceUID],
        segment_numbers=[1, 2, 3],
        combine_segments=False,
    )
    for index, label in enumerate(LABELS):
        np.testing.assert_array_equal(pixels[0, :, :, index].astype(bool), lung_masks()[label])


def test_dicom_seg_refuses_size_mismatch_and_non_dicom_source(tmp_path: Path) -> None:
    synthetic_dicom(tmp_path / "cxr.dcm", rows=32, cols=32)
    with pytest.raises(ExportError, match="32 x 32 pixels but the masks"):
        export_dicom_seg(annotation(lung_masks()), tmp_path / "cxr.dcm", tmp_path / "s.dcm")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ExportError, match="photo.png: not a readable DICOM file"):
        export_dicom_seg(annotation(lung_masks()), tmp_path / "photo.png", tmp_path / "s.dcm")
    assert not (tmp_path / "s.dcm").exists()


def test_dicom_seg_of_corrected_model_masks_is_semiautomatic_with_model_and_series(tmp_path: Path) -> None:
    synthetic_dicom(tmp_path / "cxr.dcm", "CR")
    out = export_dicom_seg(annotation(lung_masks(), kind="corrected"), tmp_path / "cxr.dcm", tmp_path / "s.dcm")
    seg = hd.seg.segread(out)
    assert seg.SeriesDescription == "LungSAM lung segmentation (corrected)"
    codes = {s.SegmentLabel: s.SegmentedPropertyTypeCodeSequence[0] for s in seg.SegmentSequence}
    assert {label: (c.CodeValue, c.CodingSchemeDesignator) for label, c in codes.items()} == {
        "lungs": ("39607008", "SCT"), "right lung": ("3341006", "SCT"), "left lung": ("44029006", "SCT"),
    }
    for segment in seg.SegmentSequence:
        assert segment.SegmentAlgorithmType == "SEMIAUTOMATIC"
        algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("lungsam-int8", "abc123")


# ------------------------------------------------------------------------ NIfTI, LabelMe, YOLO


def store_with_two_images(tmp_path: Path) -> ProjectStore:
    root = tmp_path / "cxr"
    for rel in ("a/x.png", "y.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    store = ProjectStore.open(root)
    masks = lung_masks()
    store.save_annotation("a/x.png", {"right lung": masks["right lung"], "left lung": masks["left lung"]}, "corrected")
    store.save_annotation("y.png", {"lungs": lung_masks(shift=3)["lungs"]}, "model")
    return store


def test_nifti_export_round_trips(tmp_path: Path) -> None:
    with store_with_two_images(tmp_path) as store:
        paths = export_nifti(store, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in paths) == [
        "a/x_left_lung.nii.gz", "a/x_lungs.nii.gz", "a/x_right_lung.nii.gz", "y_lungs.nii.gz",
    ]
    masks = lung_masks()
    for label in LABELS:
        np.testing.assert_array_equal(read_nifti(tmp_path / "out" / "a" / f"x_{label.replace(' ', '_')}.nii.gz"), masks[label])
    np.testing.assert_array_equal(read_nifti(tmp_path / "out" / "y_lungs.nii.gz"), lung_masks(shift=3)["lungs"])


def test_labelme_and_yolo_polygons_round_trip(tmp_path: Path) -> None:
    with store_with_two_images(tmp_path) as store:
        labelme = export_labelme(store, tmp_path / "labelme")
        yolo = export_yolo(store, tmp_path / "yolo")
    assert sorted(p.relative_to(tmp_path / "labelme").as_posix() for p in labelme) == ["a/x.json", "y.json"]
    assert sorted(p.relative_to(tmp_path / "yolo").as_posix() for p in yolo) == ["a/x.txt", "classes.txt", "y.txt"]
    assert (tmp_path / "yolo" / "classes.txt").read_text().split() == ["lungs", "right_lung", "left_lung"]
    document = json.loads((tmp_path / "labelme" / "a" / "x.json").read_text())
    assert document["imagePath"] == "x.png" and (document["imageHeight"], document["imageWidth"]) == (64, 80)
    masks = lung_masks()
    for decoded in (read_labelme(tmp_path / "labelme" / "a" / "x.json"), read_yolo(tmp_path / "yolo" / "a" / "x.txt", (64, 80))):
        assert set(decoded) == set(LABELS)
        for label in LABELS:
            np.testing.assert_array_equal(decoded[label], masks[label])
    assert set(read_yolo(tmp_path / "yolo" / "y.txt", (64, 80))) == {"lungs"}


def test_real_lung_polygons_round_trip_exactly() -> None:
    """Outer polygons keep every boundary pixel: a clinician's mask comes back exactly, holes
    filled (polygon formats have no holes)."""
    from engine.project.export_formats import mask_polygons, polygons_mask

    mask = real_mask()
    np.testing.assert_array_equal(polygons_mask(mask_polygons(mask), mask.shape), ndimage_fill(mask))


def ndimage_fill(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_fill_holes(mask)


def test_exported_files_get_normal_permissions(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        with store_with_two_images(tmp_path) as store:
            paths = [*export_png(store, tmp_path / "png"), *export_nifti(store, tmp_path / "nii"),
                     export_coco(store, tmp_path / "coco.json"), *export_yolo(store, tmp_path / "yolo"),
                     *export_labelme(store, tmp_path / "labelme")]
    finally:
        os.umask(old)
    assert paths and {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o644}
