"""Input normalisation and padding (engine.sam.preprocess): the trainer's padded batches get
exactly the input the app sends, and "percentile" takes a site's brightness and contrast out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import ModelLoadError
from engine.sam import as_rgb, normalize_and_pad, prepare_image, resize_to_input
from engine.sam.preprocess import stretch_percentiles
from tests.sam_factory import tiny_config


def radiograph(h: int = 90, w: int = 60, seed: int = 0) -> np.ndarray:
    """Grey levels 40-160 (room above for +60 without clipping), some structure."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 100 + 40 * np.sin(x / 7.0) * np.cos(y / 11.0) + rng.normal(0, 8, (h, w))
    return np.clip(base, 40, 160).astype(np.uint8)


def trainer_input(image: np.ndarray, config) -> torch.Tensor:
    """What the trainer builds: the resized image top-left in a black S x S square, + sizes."""
    resized = as_rgb(resize_to_input(image, config.img_size))
    h, w = resized.shape[:2]
    square = np.zeros((config.img_size, config.img_size, 3), np.uint8)
    square[:h, :w] = resized
    batch = torch.from_numpy(square).permute(2, 0, 1)[None].float()
    return normalize_and_pad(batch, config, sizes=torch.tensor([[h, w]]))


@pytest.mark.parametrize("normalization", ["sam", "percentile"])
def test_trainer_batch_gets_the_apps_padding_not_black(normalization):
    config = tiny_config(normalization=normalization)
    image = radiograph()  # portrait: the app pads the right-hand side
    app = prepare_image(image, config).tensor
    assert app[0, :, :, -1].abs().max() == 0  # SAM's convention: 0 after normalising
    assert torch.equal(trainer_input(image, config), app)


def test_percentile_takes_out_brightness_and_contrast():
    config = tiny_config(normalization="percentile")
    image = radiograph(64, 64)
    reference = prepare_image(image, config).tensor
    brighter = prepare_image((image.astype(np.int16) + 60).astype(np.uint8), config).tensor
    flatter = prepare_image((0.5 * image.astype(np.float32) + 64).round().astype(np.uint8), config).tensor
    assert torch.allclose(brighter, reference, atol=1e-4)
    assert (flatter - reference).abs().mean() < 0.05  # the same up to the halved grey steps
    sam = tiny_config()
    assert (prepare_image((image + 60).astype(np.uint8), sam).tensor - prepare_image(image, sam).tensor).abs().mean() > 0.9


def test_stretch_uses_each_images_own_region_and_ignores_one_percent_outliers():
    image = torch.full((1, 3, 8, 8), 100.0)
    image[..., :4, :4] = torch.linspace(50, 150, 16).view(4, 4)
    image[..., 4:, :] = 0.0  # padding below the 4 x 4 region: must not set the scale
    out = stretch_percentiles(image, torch.tensor([[4, 4]]))
    region = out[..., :4, :4]
    # 16 grey levels 50..150 in steps of 100/15: p1 = 51, p99 = 149 (linear interpolation)
    scale = 255 / 98
    assert region.min() == pytest.approx(-1 * scale, abs=1e-3) and region.max() == pytest.approx(99 * scale, abs=1e-3)
    texted = torch.linspace(50, 150, 1000).repeat(3, 1).view(1, 3, 10, 100)
    texted[..., 0, :5] = 255.0  # 0.5 % burnt-in white text
    assert stretch_percentiles(texted)[0, 0, 5, 50] == pytest.approx(stretch_percentiles(
        torch.linspace(50, 150, 1000).repeat(3, 1).view(1, 3, 10, 100))[0, 0, 5, 50], abs=3.0)
    flat = stretch_percentiles(torch.full((1, 3, 4, 4), 80.0))
    assert torch.isfinite(flat).all() and flat.abs().max() == 0


def test_unknown_normalization_is_refused():
    with pytest.raises(ModelLoadError, match="normalization must be one of sam, minmax, percentile"):
        tiny_config(normalization="zscore").validate()


def test_stretch_of_a_colour_image_uses_the_channel_mean():
    """The definition the ONNX manifest gives users: percentiles of the per-pixel channel mean."""
    rng = np.random.default_rng(1)
    rgb = rng.uniform(0, 255, (1, 3, 16, 16)).astype(np.float32)
    rgb[:, 2] *= 0.3  # a blue channel unlike the others
    lo, hi = np.quantile(rgb[0].mean(axis=0), [0.01, 0.99])
    expected = (rgb - lo) * (255.0 / (hi - lo))
    out = stretch_percentiles(torch.from_numpy(rgb)).numpy()
    assert np.allclose(out, expected, atol=1e-3)
