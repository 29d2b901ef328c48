"""Interactive prediction: embed an image once, then turn prompts into masks fast.

Like segment-anything's SamPredictor (set_image, predict) but with an embedding cache keyed
by image and model hash, several boxes per call, validated prompts in original-image pixel
coordinates, and timings the GUI shows in its status bar.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from engine.device import resolve_device
from engine.errors import PromptError
from engine.models import LoadedModel
from engine.predict.embedding_cache import CachedEmbedding, EmbeddingCache, image_hash
from engine.predict.focus import focus_merge
from engine.predict.prompt_region import restrict_masks
from engine.predict.prompts import point_prompts, validate_boxes
from engine.sam import (
    boxes_from_input,
    boxes_to_input,
    coords_to_input,
    mask_styles,
    masks_at_original,
    prepare_image,
    style_index,
)


@dataclass(frozen=True)
class Prediction:
    """Masks for B prompts with C candidates each (C = 1, or 3 with ``multimask_output``).

    ``masks``: bool B x C x H x W at the original image size; ``scores``: B x C predicted IoU;
    ``low_res_logits``: B x C x h x w, pass one back as ``mask_input`` to refine.
    """

    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray
    seconds: float

    def best(self) -> np.ndarray:
        """B x H x W: the highest-scoring candidate per prompt."""
        idx = self.scores.argmax(axis=1)
        return self.masks[np.arange(len(idx)), idx]


@dataclass(frozen=True)
class EmbeddingInfo:
    """How ``set_image`` got the embedding. ``image_hash`` is "" when the predictor's cache
    keeps nothing (the hash would only serve as its key)."""

    image_hash: str
    seconds: float
    from_cache: bool


class Predictor:
    """Stateful wrapper around a loaded model; one current image at a time.

    Thread-safe: the GUI's worker thread may call ``set_image`` (prefetch) and ``predict``
    while another thread swaps the model; a lock serialises access to the network.
    """

    def __init__(
        self,
        model: LoadedModel,
        device: str | torch.device | None = None,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.cache = cache if cache is not None else EmbeddingCache()
        self._lock = threading.RLock()
        self._current: CachedEmbedding | None = None
        self._current_hash: str | None = None
        self._features_on_device: torch.Tensor | None = None
        self.set_model(model)

    # -- model -----------------------------------------------------------------------------
    def set_model(self, model: LoadedModel, device: str | torch.device | None = None) -> None:
        """Swap the model (hot-swap after training); the current image is re-embedded lazily."""
        with self._lock:
            if device is not None:
                self.device = resolve_device(device)
            self.model = model
            self.sam = model.sam.to(self.device).eval()
            if model.box_head is not None:
                model.box_head.to(self.device).eval()
            self.config = model.config
            self._current = None
            self._current_hash = None
            self._features_on_device = None

    @property
    def mask_styles(self) -> list[str]:
        """The annotation conventions this model can draw (index 0 is the default)."""
        return mask_styles(self.sam)

    @property
    def is_image_set(self) -> bool:
        return self._current is not None

    @property
    def original_size(self) -> tuple[int, int]:
        return self._require_image().original_size

    # -- image -----------------------------------------------------------------------------
    def embed(self, image: np.ndarray) -> tuple[CachedEmbedding, EmbeddingInfo]:
        """Embedding of ``image`` from the cache or the encoder (does not change the current image)."""
        item, info, _ = self._embed(image)
        return item, info

    def _embed(self, image: np.ndarray) -> tuple[CachedEmbedding, EmbeddingInfo, torch.Tensor | None]:
        """Also returns the encoder output still on the device when it was just computed,
        so ``set_image`` on a GPU does not copy the features back up from the CPU cache."""
        stores = self.cache.stores
        digest = image_hash(image) if stores else ""
        key = EmbeddingCache.key(digest, self.model.model_hash)
        start = time.perf_counter()
        with self._lock:
            cached = self.cache.get(key) if stores else None
            if cached is not None:
                return cached, EmbeddingInfo(digest, time.perf_counter() - start, True), None
            prepared = prepare_image(image, self.config, self.device)
            with torch.inference_mode():
                features = self.sam.image_encoder(prepared.tensor).float()
            item = CachedEmbedding(features.cpu(), prepared.input_size, prepared.original_size)
            if stores:
                self.cache.put(key, item)
        return item, EmbeddingInfo(digest, time.perf_counter() - start, False), features

    def set_image(self, image: np.ndarray) -> EmbeddingInfo:
        """Make ``image`` (grey or RGB uint8, any size) current; encodes it unless cached."""
        item, info, on_device = self._embed(image)
        with self._lock:
            self._current = item
            self._current_hash = info.image_hash
            self._features_on_device = on_device if on_device is not None else item.features.to(self.device)
        return info

    def prefetch(self, image: np.ndarray) -> EmbeddingInfo:
        """Warm the cache for the next image without changing the current one."""
        return self.embed(image)[1]

    def head_boxes(self) -> np.ndarray | None:
        """3 x 4 boxes (``engine.sam.BOX_KINDS``: both lungs, image-left lung, image-right lung)
        in original pixels, read by the model's box head off the current embedding; None when
        the model has no box head."""
        self._require_image()
        head = self.model.box_head
        if head is None:
            return None
        with self._lock, torch.inference_mode():
            current = self._require_image()
            unit = head(self._device_features().float())[0].float().cpu().numpy()
            return boxes_from_input(unit * self.config.img_size, current.original_size, self.config.img_size)

    # -- prompts ---------------------------------------------------------------------------
    def predict(
        self,
        boxes: object | None = None,
        points: object | None = None,
        point_labels: object | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = False,
        style: str | int | None = None,
        restrict: bool = True,
        focus: bool = False,
    ) -> Prediction:
        """Masks for one or several boxes and/or points, all in original-image pixels.

        ``boxes``: (4,) or (B, 4). ``points``: (N, 2) shared by every box, or (B, N, 2).
        ``mask_input``: (B or 1, 1, h, w) low-res logits from a previous call (pass back
        ``low_res_logits`` of the previous prediction unchanged, as training does).
        ``style``: the annotation convention (:mod:`engine.sam.styles`), default style 0.
        ``restrict``: limit each mask to its prompt (:mod:`engine.predict.prompt_region`); the
        low-res logits are the model's own either way.
        ``focus``: the last point is a corrective click on the mask of ``mask_input``: only a
        disk around it takes the new logits, the rest keeps ``mask_input``
        (:mod:`engine.predict.focus`); ``low_res_logits`` are then the merged ones.
        """
        self._require_image()
        token = style_index(self.sam, style)
        if token and multimask_output:
            raise PromptError("several candidate masks are only available in the model's default style")
        start = time.perf_counter()
        with self._lock:
            size = self._require_image().original_size  # read under the lock: set_image may swap it
            long_side = self.config.img_size
            box_t = point_t = label_t = mask_t = None
            valid = original_pts = None
            batch = 1
            if boxes is not None:
                valid = validate_boxes(boxes, size)
                batch = len(valid)
                box_t = torch.as_tensor(boxes_to_input(valid, size, long_side), dtype=torch.float)
            parsed = point_prompts(points, point_labels, size, batch)
            if parsed is not None:
                original_pts, labels = parsed
                pts = coords_to_input(original_pts, size, long_side)
                point_t = torch.as_tensor(pts, dtype=torch.float)
                label_t = torch.as_tensor(labels, dtype=torch.int)
            if box_t is None and point_t is None:
                raise PromptError("give at least one box or one point")
            if mask_input is not None:
                mask_t = self._mask_input_tensor(mask_input, batch)
            if focus and (mask_t is None or point_t is None or multimask_output):
                raise PromptError("a focused correction needs the previous logits, a click and one mask per prompt")
            low_res, iou = self._decode_low_res(box_t, point_t, label_t, mask_t, multimask_output, token)
            if focus:
                assert mask_t is not None and point_t is not None
                merged = [
                    focus_merge(mask_t[b].numpy(), low_res[b].float().cpu().numpy(), tuple(point_t[b, -1].tolist()), long_side)
                    for b in range(batch)
                ]
                low_res = torch.from_numpy(np.stack(merged)).to(low_res.device)
            masks = self._masks_at_original(low_res)
            scores, low = iou.float().cpu().numpy(), low_res.float().cpu().numpy()
            if restrict:
                masks = restrict_masks(
                    masks, valid if boxes is not None else None,
                    original_pts if point_t is not None else None,
                    label_t.numpy() if label_t is not None else None,
                )
        return Prediction(masks, scores, low, time.perf_counter() - start)

    def predict_low_res(self, boxes: object, style: str | int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Low-res logits B x h x w and predicted IoU (B,) for boxes in original pixels, without
        the upsampling to the original size: what a quality check that decodes the same image
        many times (boxes jittered, say) needs, at a fraction of ``predict``'s cost on a large
        image. The logits are in the input frame (see :mod:`engine.sam.preprocess`)."""
        self._require_image()
        token = style_index(self.sam, style)
        with self._lock:
            size = self._require_image().original_size
            valid = validate_boxes(boxes, size)
            box_t = torch.as_tensor(boxes_to_input(valid, size, self.config.img_size), dtype=torch.float)
            low_res, iou = self._decode_low_res(box_t, None, None, None, False, token)
        return low_res[:, 0].float().cpu().numpy(), iou[:, 0].float().cpu().numpy()

    def predict_and_probe(
        self, boxes: object, probe_boxes: object, style: str | int | None = None,
    ) -> tuple[Prediction, np.ndarray, np.ndarray]:
        """``predict(boxes=boxes, style=style)`` and ``predict_low_res(probe_boxes, style)`` in
        one decoder pass: (prediction, probe low-res logits P x h x w, probe IoU (P,)).

        Why: each decoder call costs a fixed ~7 ms on two CPU threads besides ~2.5 ms per box,
        and zero-click decodes the two lung boxes and then eight jittered copies of them for its
        quality score (:mod:`engine.propose.quality`). The decoder treats each box on its own,
        so the result is that of the two separate calls (up to float summation order).
        """
        self._require_image()
        token = style_index(self.sam, style)
        start = time.perf_counter()
        with self._lock:
            size = self._require_image().original_size
            valid = validate_boxes(boxes, size)
            probes = validate_boxes(probe_boxes, size)
            both = np.concatenate([valid, probes])
            box_t = torch.as_tensor(boxes_to_input(both, size, self.config.img_size), dtype=torch.float)
            low_res, iou = self._decode_low_res(box_t, None, None, None, False, token)
            n = len(valid)
            masks = restrict_masks(self._masks_at_original(low_res[:n]), valid, None, None)
            prediction = Prediction(
                masks, iou[:n].float().cpu().numpy(), low_res[:n].float().cpu().numpy(), time.perf_counter() - start,
            )
        return prediction, low_res[n:, 0].float().cpu().numpy(), iou[n:, 0].float().cpu().numpy()

    def _mask_input_tensor(self, mask_input: np.ndarray, batch: int) -> torch.Tensor:
        low = self.config.low_res_size
        arr = np.asarray(mask_input, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[None, None]
        elif arr.ndim == 3:
            arr = arr[:, None]
        if arr.shape[-2:] != (low, low) or arr.shape[1] != 1 or arr.shape[0] not in (1, batch):
            raise PromptError(f"mask_input must be (B, 1, {low}, {low}) low-res logits")
        if arr.shape[0] == 1 and batch > 1:
            arr = np.repeat(arr, batch, 0)
        return torch.from_numpy(arr)

    @torch.inference_mode()
    def _decode_low_res(self, boxes, points, labels, mask_input, multimask_output, token: int = 0):
        """Prompt encoder + mask decoder on the current embedding: low-res logits and predicted
        IoU, the candidates of style ``token`` only when it is not the default."""
        dev = self.device
        sparse, dense = self.sam.prompt_encoder(
            points=(points.to(dev), labels.to(dev)) if points is not None else None,
            boxes=boxes.to(dev) if boxes is not None else None,
            masks=mask_input.to(dev) if mask_input is not None else None,
        )
        low_res, iou = self.sam.mask_decoder(
            image_embeddings=self._device_features(),
            image_pe=self.sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output or token > 0,
        )
        if token:  # the multimask output holds tokens 1..3
            low_res, iou = low_res[:, token - 1 : token], iou[:, token - 1 : token]
        return low_res, iou

    def _masks_at_original(self, low_res: torch.Tensor) -> np.ndarray:
        """bool B x C x H x W masks of B x C low-res logits, at the current image's size."""
        current = self._require_image()
        return masks_at_original(
            low_res, current.input_size, current.original_size, self.config.img_size, self.sam.mask_threshold,
        )

    def _require_image(self) -> CachedEmbedding:
        """The current image's embedding record; PromptError when no image is set."""
        if self._current is None:
            raise PromptError("no image is set: call set_image() first")
        return self._current

    def _device_features(self) -> torch.Tensor:
        """The current image's encoder output on the predictor's device."""
        self._require_image()
        assert self._features_on_device is not None  # set together with _current
        return self._features_on_device
