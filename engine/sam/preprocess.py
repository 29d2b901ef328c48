"""The one place where images and prompts are mapped into a SAM's input frame and back.

Predictor, trainer and evaluation all call these functions, so a model sees exactly the
same pixels in training and in use. The mapping mirrors segment-anything's
``ResizeLongestSide`` + ``Sam.preprocess``/``postprocess_masks`` so official weights behave
as published.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from engine.sam.config import SamConfig


def resized_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) after scaling the longest side to ``long_side`` (SAM's rounding)."""
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 from grey HxW, HxWx1, RGB or RGBA."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def resize_to_input(image: np.ndarray, long_side: int) -> np.ndarray:
    """Antialiased bilinear resize of a grey or RGB uint8 image (PIL, as SAM does)."""
    h, w = resized_shape(image.shape[0], image.shape[1], long_side)
    if (h, w) == image.shape[:2]:
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))


#: Percentiles of an image's own grey levels that ``"percentile"`` normalisation maps to 0 and 255.
STRETCH_PERCENTILES = (0.01, 0.99)


def stretch_percentiles(batch: torch.Tensor, sizes: torch.Tensor | None = None) -> torch.Tensor:
    """B x 3 x h x w 0-255 pixels -> each image's [p1, p99] stretched linearly to [0, 255]
    (percentiles of the channel mean, the grey image itself for a grey radiograph, over its own
    region ``sizes`` (B x 2: h, w) when given).

    Why: sites export the same anatomy brighter, darker or flatter (one hospital's median
    grey is ~205 of 255); a linear stretch by the image's own percentiles takes brightness
    and contrast out of what the model has to learn, and 1 % at each end lets a black film
    border or burnt-in white text pass without setting the scale.
    """
    out = torch.empty_like(batch)
    q = torch.tensor(STRETCH_PERCENTILES, device=batch.device, dtype=batch.dtype)
    for i in range(batch.shape[0]):
        h, w = (int(v) for v in sizes[i]) if sizes is not None else batch.shape[-2:]
        lo, hi = torch.quantile(batch[i, :, :h, :w].mean(dim=0).reshape(-1), q)
        out[i] = (batch[i] - lo) * (255.0 / torch.clamp(hi - lo, min=1.0))
    return out


def normalize_and_pad(batch: torch.Tensor, config: SamConfig, sizes: torch.Tensor | None = None) -> torch.Tensor:
    """Bx3xhxw float pixels (0-255) -> Bx3xSxS network input, zero-padded bottom/right.

    ``sizes`` (B x 2: h, w): a batch already padded to S x S (the trainer's), whose images
    fill only their top-left h x w. Outside it the input is set to 0 after normalising, as for
    one image padded here, so training sees the padding the app sends (SAM's convention: the
    mean grey, not black).
    """
    if config.normalization == "minmax":
        flat = batch.flatten(1)
        lo = flat.min(dim=1).values.view(-1, 1, 1, 1)
        hi = flat.max(dim=1).values.view(-1, 1, 1, 1)
        batch = (batch - lo) / (hi - lo).clamp_min(1e-8)
    else:
        if config.normalization == "percentile":
            batch = stretch_percentiles(batch, sizes)
        mean = torch.tensor(config.pixel_mean, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(config.pixel_std, device=batch.device).view(1, 3, 1, 1)
        batch = (batch - mean) / std
    if sizes is not None:
        rows = torch.arange(batch.shape[-2], device=batch.device).view(1, -1, 1)
        cols = torch.arange(batch.shape[-1], device=batch.device).view(1, 1, -1)
        h, w = sizes[:, 0].to(batch.device).view(-1, 1, 1), sizes[:, 1].to(batch.device).view(-1, 1, 1)
        batch = batch * ((rows < h) & (cols < w)).unsqueeze(1)
    h, w = batch.shape[-2:]
    return F.pad(batch, (0, config.img_size - w, 0, config.img_size - h))


@dataclass(frozen=True)
class PreparedImage:
    """Network input for one image plus the sizes needed to map results back."""

    tensor: torch.Tensor  # 1x3xSxS float32, normalised and padded
    input_size: tuple[int, int]  # (h, w) of the resized image inside the SxS square
    original_size: tuple[int, int]  # (H, W) of the image as loaded


def prepare_image(image: np.ndarray, config: SamConfig, device: torch.device | str | None = None) -> PreparedImage:
    """Grey/RGB uint8 image of any size -> normalised, padded 1x3xSxS tensor on ``device``.

    Grey images are resized as one channel and replicated afterwards: the same pixels as
    resizing the RGB copy, at a third of the cost on large radiographs. The uint8 pixels
    travel to the device and are normalised there (a quarter of the bytes of float32).
    """
    grey = image if image.ndim == 2 else (image[:, :, 0] if image.shape[2] == 1 else None)
    if grey is not None:
        resized = as_rgb(resize_to_input(np.ascontiguousarray(grey), config.img_size))
    else:
        resized = resize_to_input(as_rgb(image), config.img_size)
    tensor = torch.from_numpy(np.array(resized, copy=True)).permute(2, 0, 1)[None]
    if device is not None:
        tensor = tensor.to(device)
    tensor = tensor.float()
    return PreparedImage(
        tensor=normalize_and_pad(tensor, config),
        input_size=(resized.shape[0], resized.shape[1]),
        original_size=(image.shape[0], image.shape[1]),
    )


def coords_to_input(coords: np.ndarray, original_size: tuple[int, int], long_side: int) -> np.ndarray:
    """Map (..., 2) x,y pixel coordinates of the original image into the input frame."""
    old_h, old_w = original_size
    new_h, new_w = resized_shape(old_h, old_w, long_side)
    out = np.array(coords, dtype=np.float64, copy=True)
    out[..., 0] *= new_w / old_w
    out[..., 1] *= new_h / old_h
    return out


def boxes_to_input(boxes: np.ndarray, original_size: tuple[int, int], long_side: int) -> np.ndarray:
    """Map Bx4 (x0, y0, x1, y1) boxes into the input frame."""
    return coords_to_input(np.asarray(boxes).reshape(-1, 2, 2), original_size, long_side).reshape(-1, 4)


def boxes_from_input(boxes: np.ndarray, original_size: tuple[int, int], long_side: int) -> np.ndarray:
    """Inverse of :func:`boxes_to_input`: Bx4 input-frame boxes -> original pixels, clipped to
    the image (a box head may reach into the padding)."""
    old_h, old_w = original_size
    new_h, new_w = resized_shape(old_h, old_w, long_side)
    out = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 4)
    out[:, 0::2] = np.clip(out[:, 0::2] * old_w / new_w, 0, old_w)
    out[:, 1::2] = np.clip(out[:, 1::2] * old_h / new_h, 0, old_h)
    return out


def masks_at_original(
    low_res: torch.Tensor,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
    img_size: int,
    threshold: float = 0.0,
) -> np.ndarray:
    """Bool B x C x H x W masks from decoder logits, fast on large images.

    Same two steps as :func:`logits_to_original` (upsample to the input square, crop, resize
    to the original size), but the last, expensive step runs in OpenCV per mask, whose
    INTER_LINEAR uses the same half-pixel-centre bilinear as ``align_corners=False``.
    """
    if low_res.device.type != "cpu":  # a GPU upsamples faster than it copies float logits back
        up = logits_to_original(low_res.float(), input_size, original_size, img_size)
        return (up > threshold).cpu().numpy()
    up = logits_at_input(low_res.float(), input_size, img_size).numpy()
    height, width = original_size
    b, c = up.shape[:2]
    out = np.empty((b, c, height, width), dtype=bool)
    for i in range(b):
        for j in range(c):
            out[i, j] = cv2.resize(up[i, j], (width, height), interpolation=cv2.INTER_LINEAR) > threshold
    return out


def logits_to_original(
    low_res: torch.Tensor,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
    img_size: int,
) -> torch.Tensor:
    """BxCxhxw decoder logits -> BxCxHxW logits at the original image size."""
    up = logits_at_input(low_res, input_size, img_size)
    return F.interpolate(up, original_size, mode="bilinear", align_corners=False)


def logits_at_input(low_res: torch.Tensor, input_size: tuple[int, int], img_size: int) -> torch.Tensor:
    """Decoder logits upsampled to the padded input square and cropped to the image region."""
    up = F.interpolate(low_res, (img_size, img_size), mode="bilinear", align_corners=False)
    return up[..., : input_size[0], : input_size[1]]
