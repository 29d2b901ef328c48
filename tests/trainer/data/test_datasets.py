"""Folders -> decoded sets: pairing by stem, bad pairs skipped and counted, cache reuse."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.errors import TrainingError
from trainer.data import find_pairs, load_set


def test_pairs_by_stem_with_spaces_and_parentheses(small_set):
    pairs = find_pairs(small_set)
    assert len(pairs) == 8 and all(" (" in p.name for p in pairs)
    data = load_set(pairs, 256)
    assert data.images.shape == (8, 256, 256, 3) and data.labels.max() == 2
    assert (data.input_sizes == 256).all()


def test_bad_pairs_are_skipped_with_the_file_named(small_set, caplog):
    (small_set / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (small_set / "masks" / "broken.png").write_bytes(b"garbage")
    Image.fromarray(np.zeros((256, 256), np.uint8)).save(small_set / "images" / "empty.png")
    Image.fromarray(np.zeros((256, 256), np.uint8)).save(small_set / "masks" / "empty.png")
    Image.fromarray(np.zeros((100, 90), np.uint8)).save(small_set / "images" / "size.png")
    Image.fromarray(np.full((256, 256), 255, np.uint8)).save(small_set / "masks" / "size.png")
    data = load_set(find_pairs(small_set), 256)
    assert len(data) == 8
    skipped = dict(data.skipped)
    assert set(skipped) == {"broken", "empty", "size"}
    assert "empty" in skipped["empty"] and "mask is" in skipped["size"]
    assert "broken" in caplog.text


def test_large_images_are_resized_into_the_input_frame(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    mask = np.zeros((300, 600), np.uint8)
    mask[50:250, 50:280] = 255
    mask[50:250, 320:550] = 255
    Image.fromarray(np.full((300, 600), 90, np.uint8)).save(tmp_path / "images" / "wide.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "wide.png")
    data = load_set(find_pairs(tmp_path), 128)
    assert data.input_sizes[0].tolist() == [64, 128]
    assert data.labels[0, 64:].max() == 0, "padding below the image stays background"
    assert set(np.unique(data.labels[0, :64])) == {0, 1, 2}


def test_cache_returns_the_same_arrays(small_set, tmp_path):
    pairs = find_pairs(small_set)
    first = load_set(pairs, 64, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    second = load_set(pairs, 64, cache_dir=tmp_path / "cache")
    assert np.array_equal(first.images, second.images) and second.names == first.names


def test_folder_without_masks_is_a_clear_error(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / "a.png")
    with pytest.raises(TrainingError, match="no masks"):
        find_pairs(tmp_path)


def test_project_folder_gives_its_corrected_masks(small_set, tmp_path):
    from engine.project import ProjectStore

    images = sorted((small_set / "images").iterdir())
    with ProjectStore.open(small_set) as store:
        store.register_images(images)
        for i, path in enumerate(images[:3]):
            mask = np.array(Image.open(small_set / "masks" / path.name)) > 0
            kind = "corrected" if i < 2 else "model"
            store.save_annotation(f"images/{path.name}", {"lungs": mask}, kind)
    pairs = find_pairs(small_set)
    assert [p.name for p in pairs] == [f"images/{p.name}" for p in images[:2]]
    data = load_set(pairs, 64)
    assert len(data) == 2 and not data.skipped


def test_split_keeps_held_back_images_apart(small_set):
    from trainer.data import split_pairs

    pairs = find_pairs(small_set)
    train, val = split_pairs(pairs, 0.25, seed=1)
    assert len(val) == 2 and len(train) == 6
    assert not {p.name for p in train} & {p.name for p in val}
    assert split_pairs(pairs, 0.25, seed=1) == (train, val)


def test_a_validation_limit_samples_the_whole_list_not_its_prefix(tmp_path):
    """Files listed by class (all easy ones first) must not leave a capped set with one class."""
    from trainer.data import Pair, sample_pairs

    pairs = [Pair(f"{kind}_{i:03d}", tmp_path / f"{kind}_{i:03d}.png", tmp_path / "m.png")
             for kind in ("normal", "covid", "pneumonia") for i in range(100)]
    chosen = sample_pairs(pairs, 60, seed=0)
    assert len(chosen) == 60 and len({p.name for p in chosen}) == 60
    assert chosen == [p for p in pairs if p in chosen]  # original order kept
    kinds = [p.name.split("_")[0] for p in chosen]
    assert all(8 <= kinds.count(k) <= 32 for k in ("normal", "covid", "pneumonia")), kinds
    assert sample_pairs(pairs, 60, seed=0) == chosen
    assert sample_pairs(pairs, 60, seed=1) != chosen
    assert sample_pairs(pairs, 300, seed=0) == pairs and sample_pairs(pairs, 500) == pairs
