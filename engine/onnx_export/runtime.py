"""Run an exported folder with ONNX Runtime: what a deployer does, and what the tests and
``benchmarks/int8.py`` compare with :class:`engine.predict.Predictor`.

Preprocessing and the prompt frame are the engine's own (:func:`engine.sam.prepare_image`,
:func:`engine.sam.boxes_to_input`), so only the networks differ. Prompts are not validated
here (the Predictor does that); masks are not restricted to the prompt region.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.onnx_export.writer import MANIFEST, require
from engine.sam import SamConfig, boxes_to_input, coords_to_input, prepare_image


@dataclass(frozen=True)
class OnnxEmbedding:
    features: np.ndarray  # 1 x C x h x w float32
    input_size: tuple[int, int]  # (h, w) of the resized image inside the square input
    original_size: tuple[int, int]  # (H, W)


def session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session (``threads`` intra-op threads; None: ORT's default)."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    # No busy-waiting between runs: ORT's pool otherwise spins for a while after each run,
    # taking the CPU from whatever runs next in this process (torch, the GUI).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """Encoder + per-style decoders of an exported folder."""

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        folder = Path(folder)
        self.manifest = json.loads((folder / MANIFEST).read_text())
        m = self.manifest
        self.config = SamConfig(
            img_size=m["img_size"], normalization=m["normalization"],
            pixel_mean=tuple(m["pixel_mean"]), pixel_std=tuple(m["pixel_std"]),
        )
        self.encoder = session(folder / m["encoder"], threads)
        self.decoders = {style: session(folder / name, threads) for style, name in m["decoders"].items()}

    @property
    def mask_styles(self) -> list[str]:
        return list(self.manifest["mask_styles"])

    def embed(self, image: np.ndarray) -> OnnxEmbedding:
        prepared = prepare_image(image, self.config)
        (features,) = self.encoder.run(None, {"image": prepared.tensor.numpy()})
        return OnnxEmbedding(features, prepared.input_size, prepared.original_size)

    def embed_tensor(self, tensor: np.ndarray) -> np.ndarray:
        """Encoder only, on a prepared 1 x 3 x S x S input (benchmarks)."""
        return self.encoder.run(None, {"image": tensor})[0]

    def predict(
        self,
        embedding: OnnxEmbedding,
        box: np.ndarray | None = None,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        style: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One prompt in original-image pixels -> (bool mask H x W, IoU score, 1 x 1 x 4h x 4w logits).

        The same sparse tokens as SAM's prompt encoder: clicks, then the box as two corner
        points (labels 2, 3); without a box, one padding point labelled -1.
        """
        size = embedding.original_size
        long_side = self.config.img_size
        coords, labels = [], []
        if points is not None:
            coords.append(coords_to_input(np.asarray(points, dtype=np.float64).reshape(-1, 2), size, long_side))
            labels.append(np.asarray(point_labels, dtype=np.float64).reshape(-1))
        if box is not None:
            coords.append(boxes_to_input(np.asarray(box, dtype=np.float64), size, long_side).reshape(2, 2))
            labels.append(np.array([2.0, 3.0]))
        else:
            coords.append(np.zeros((1, 2)))
            labels.append(np.array([-1.0]))
        low = 4 * (long_side // 16)
        has_mask = mask_input is not None
        feeds = {
            "image_embeddings": embedding.features,
            "point_coords": np.concatenate(coords)[None].astype(np.float32),
            "point_labels": np.concatenate(labels)[None].astype(np.float32),
            "mask_input": (np.asarray(mask_input, np.float32).reshape(1, 1, low, low) if has_mask
                           else np.zeros((1, 1, low, low), np.float32)),
            "has_mask_input": np.array([1.0 if has_mask else 0.0], np.float32),
            "orig_im_size": np.array(size, np.float32),
        }
        decoder = self.decoders[style if style is not None else self.mask_styles[0]]
        masks, iou, low_res = decoder.run(None, feeds)
        return masks[0, 0] > self.manifest["mask_threshold"], iou[0, 0], low_res
